{#- SQL that differs between DuckDB, PostgreSQL and Redshift. Each macro dispatches on the adapter. -#}

{#- md5 hex digest of a text expression. -#}
{% macro md5_hex(expr) -%}
    {{ return(adapter.dispatch('md5_hex', 'fe_platform')(expr)) }}
{%- endmacro %}
{% macro default__md5_hex(expr) -%} md5(cast({{ expr }} as varchar)) {%- endmacro %}
{% macro duckdb__md5_hex(expr) -%} md5(cast({{ expr }} as varchar)) {%- endmacro %}
{% macro postgres__md5_hex(expr) -%} md5(cast({{ expr }} as text)) {%- endmacro %}
{% macro redshift__md5_hex(expr) -%} md5(cast({{ expr }} as varchar)) {%- endmacro %}

{#- Deterministic surrogate key: md5 of the natural key's parts, null-safe, '|'-separated. -#}
{% macro surrogate_key(columns) -%}
    {%- set parts = [] -%}
    {%- for col in columns -%}
        {%- do parts.append("coalesce(cast(" ~ col ~ " as varchar), '_null_')") -%}
    {%- endfor -%}
    {{ md5_hex(parts | join(" || '|' || ")) }}
{%- endmacro %}

{#- A date plus a whole number of days, as a date. -#}
{% macro add_days(date_expr, days_expr) -%}
    {{ return(adapter.dispatch('add_days', 'fe_platform')(date_expr, days_expr)) }}
{%- endmacro %}
{% macro default__add_days(date_expr, days_expr) -%}
    cast(cast({{ date_expr }} as date) + cast({{ days_expr }} as integer) as date)
{%- endmacro %}
{% macro duckdb__add_days(date_expr, days_expr) -%}
    cast(cast({{ date_expr }} as date) + cast({{ days_expr }} as integer) as date)
{%- endmacro %}
{% macro redshift__add_days(date_expr, days_expr) -%}
    cast(dateadd(day, cast({{ days_expr }} as integer), cast({{ date_expr }} as date)) as date)
{%- endmacro %}

{#- Day of week, 0 = Sunday ... 6 = Saturday (the same on all three adapters). -#}
{% macro day_of_week(date_expr) -%}
    {{ return(adapter.dispatch('day_of_week', 'fe_platform')(date_expr)) }}
{%- endmacro %}
{% macro default__day_of_week(date_expr) -%}
    cast(extract(dow from cast({{ date_expr }} as date)) as integer)
{%- endmacro %}
{% macro duckdb__day_of_week(date_expr) -%}
    cast(dayofweek(cast({{ date_expr }} as date)) as integer)
{%- endmacro %}

{#- The Friday that ends the date's Saturday-to-Friday week (IQVIA's week_ending). -#}
{% macro week_ending(date_expr) -%}
    {{ add_days(date_expr, "mod(12 - " ~ day_of_week(date_expr) ~ ", 7)") }}
{%- endmacro %}

{#- First day of the date's month, as a date. -#}
{% macro month_start(date_expr) -%}
    {{ return(adapter.dispatch('month_start', 'fe_platform')(date_expr)) }}
{%- endmacro %}
{% macro default__month_start(date_expr) -%}
    cast(date_trunc('month', cast({{ date_expr }} as date)) as date)
{%- endmacro %}

{#- Seconds since the epoch of a timestamp (with or without time zone; naive ones read as UTC). -#}
{% macro epoch_seconds(ts_expr) -%}
    {{ return(adapter.dispatch('epoch_seconds', 'fe_platform')(ts_expr)) }}
{%- endmacro %}
{% macro default__epoch_seconds(ts_expr) -%}
    cast(extract(epoch from {{ ts_expr }}) as double precision)
{%- endmacro %}
{% macro duckdb__epoch_seconds(ts_expr) -%}
    cast(epoch({{ ts_expr }}) as double precision)
{%- endmacro %}

{#- A timestamp with time zone as a UTC date. -#}
{% macro utc_date(ts_expr) -%}
    {{ return(adapter.dispatch('utc_date', 'fe_platform')(ts_expr)) }}
{%- endmacro %}
{% macro default__utc_date(ts_expr) -%}
    cast(({{ ts_expr }}) at time zone 'UTC' as date)
{%- endmacro %}
{% macro redshift__utc_date(ts_expr) -%}
    cast(convert_timezone('UTC', {{ ts_expr }}) as date)
{%- endmacro %}

{#- The n-th (1-based) part of a delimited string, null when absent. -#}
{% macro split_part_or_null(expr, delimiter, n) -%}
    nullif(trim(split_part({{ expr }}, '{{ delimiter }}', {{ n }})), '')
{%- endmacro %}

{#- Division that gives null instead of failing on zero. -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as double precision) / nullif(cast({{ denominator }} as double precision), 0))
{%- endmacro %}

{#- Whole days from start_expr to end_expr (dates). -#}
{% macro days_between(start_expr, end_expr) -%}
    {{ return(adapter.dispatch('days_between', 'fe_platform')(start_expr, end_expr)) }}
{%- endmacro %}
{% macro default__days_between(start_expr, end_expr) -%}
    cast((cast({{ end_expr }} as date) - cast({{ start_expr }} as date)) as integer)
{%- endmacro %}
{% macro duckdb__days_between(start_expr, end_expr) -%}
    cast(date_diff('day', cast({{ start_expr }} as date), cast({{ end_expr }} as date)) as integer)
{%- endmacro %}
{% macro redshift__days_between(start_expr, end_expr) -%}
    cast(datediff(day, cast({{ start_expr }} as date), cast({{ end_expr }} as date)) as integer)
{%- endmacro %}
