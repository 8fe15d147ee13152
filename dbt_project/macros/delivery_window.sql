{#-
  Incremental facts that follow a feed's deliveries. A fact names its feed in its YAML config
  (`config: {meta: {fe_platform: {delivery_feed: <feed>}}}`); the partitions it (re)processes in a run:
  - var delivery_dates given ({"<feed>": ["YYYY-MM-DD", ...]}), or else the same in the environment variable
    FE_DBT_DELIVERY_DATES (as Dagster passes them: a var that changes at every run would make dbt parse the
    whole project again each time; the variable is read only when the facts compile): exactly the listed
    partitions of its feed, none when its feed is not listed;
  - no delivery_dates var, incremental run: the partitions newer than the newest the table holds;
  - first build or --full-refresh: every partition.
  A run recomputes every key it touches from every lake row: see latest_delivery_ctes.
-#}

{#- The feed whose deliveries the model follows: its config meta fe_platform.delivery_feed. A unit test runs
    without its model's config, so it names the feed in its vars overrides (unit_test_delivery_feed). -#}
{% macro delivery_feed() -%}
    {%- if model.resource_type == 'unit_test' -%}
        {%- set feed = var('unit_test_delivery_feed', none) -%}
    {%- else -%}
        {%- set feed = ((config.get('meta') or {}).get('fe_platform') or {}).get('delivery_feed') -%}
    {%- endif -%}
    {%- if not feed and execute -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ " follows deliveries but declares no config.meta.fe_platform.delivery_feed") }}
    {%- endif -%}
    {{ return(feed) }}
{%- endmacro %}

{#- The processed partitions as checked 'YYYY-MM-DD' strings, or none when no delivery_dates are given. -#}
{% macro delivery_dates_to_process() -%}
    {%- set by_feed = var('delivery_dates', none) -%}
    {%- if by_feed is none and execute and env_var('FE_DBT_DELIVERY_DATES', '') -%}
        {%- set by_feed = fromjson(env_var('FE_DBT_DELIVERY_DATES')) -%}
    {%- endif -%}
    {%- if by_feed is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if by_feed is not mapping -%}
        {{ exceptions.raise_compiler_error("var delivery_dates must map a feed to a list of dates YYYY-MM-DD") }}
    {%- endif -%}
    {%- set feed = fe_platform.delivery_feed() -%}
    {%- set dates = by_feed.get(feed) or [] -%}
    {%- if dates is string or dates is not iterable -%}
        {{ exceptions.raise_compiler_error("var delivery_dates." ~ feed ~ " must be a list of dates YYYY-MM-DD") }}
    {%- endif -%}
    {%- set checked = [] -%}
    {%- for value in dates -%}
        {%- do checked.append(fe_platform.checked_date(feed, value)) -%}
    {%- endfor -%}
    {{ return(checked | unique | sort | list) }}
{%- endmacro %}

{#- A date inlined in SQL: exactly YYYY-MM-DD and a real calendar day, anything else is refused. -#}
{% macro checked_date(feed, value) -%}
    {%- set text = value | string -%}
    {%- set ok = modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) is not none -%}
    {%- if ok -%}
        {%- set ok = fe_platform.is_calendar_day(text) -%}
    {%- endif -%}
    {%- if not ok -%}
        {{ exceptions.raise_compiler_error("var delivery_dates." ~ feed ~ ": not a date YYYY-MM-DD: " ~ (text | tojson)) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{% macro is_calendar_day(text) -%}
    {%- set year, month, day = text[0:4] | int, text[5:7] | int, text[8:10] | int -%}
    {%- if year < 1 or month < 1 or month > 12 or day < 1 -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set leap = (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 -%}
    {%- set days_in_month = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] -%}
    {{ return(day <= days_in_month[month - 1]) }}
{%- endmacro %}

{#- A predicate on `column` (a delivery date) that selects the partitions this run processes. -#}
{% macro delivery_window_filter(column) -%}
    {%- if not is_incremental() -%}
        1 = 1
    {%- else -%}
        {%- set dates = fe_platform.delivery_dates_to_process() -%}
        {%- if dates is none -%}
            {{ column }} > (select coalesce(max(delivery_date), cast('1900-01-01' as date)) from {{ this }})
        {%- elif dates -%}
            {{ column }} in ({% for d in dates %}cast('{{ d }}' as date){{ ", " if not loop.last }}{% endfor %})
        {%- else -%}
            1 = 0
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#-
  Latest delivery wins, shared by the incremental facts. After a CTE `lake_rows` that selects `key`, the fact's
  columns (delivery_date, source_file and source_row among them) from EVERY lake row, this emits the CTEs
  `candidates` and `latest` (one row per key: the first in `order_by`, by default the latest delivery).
  In an incremental run only the affected keys are recomputed: the keys delivered in the processed partitions
  and the keys the table holds from them (a correction may have withdrawn those). They are recomputed from every
  lake row, so a key takes the latest delivery that still holds it, and a key no delivery holds any more is
  deleted by the `latest_delivery` strategy below. The result equals a full rebuild whatever the order of runs.
-#}
{% macro latest_delivery_ctes(key, order_by='delivery_date desc, source_file desc, source_row desc') -%}
{% if is_incremental() %}
affected_keys as (

    select {{ key }} from lake_rows where {{ fe_platform.delivery_window_filter('delivery_date') }}
    union
    select {{ key }} from {{ this }} where {{ fe_platform.delivery_window_filter('delivery_date') }}

),

candidates as (

    select lake_rows.*
    from lake_rows
    where {{ key }} in (select {{ key }} from affected_keys)

),
{% else %}
candidates as (

    select * from lake_rows

),
{% endif %}

ranked as (

    select
        candidates.*,
        row_number() over (partition by {{ key }} order by {{ order_by }}) as delivery_rank
    from candidates

),

latest as (

    select * from ranked where delivery_rank = 1

)
{%- endmacro %}

{#-
  The incremental strategy of the facts that follow deliveries (incremental_strategy='latest_delivery'): delete
  the rows of every key the run recomputed and every row the table holds from a processed partition, then insert
  the recomputed rows. A key that only withdrawn rows held is gone; the others hold their latest delivery's row.
-#}
{% macro get_incremental_latest_delivery_sql(arg_dict) -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ arg_dict['target_relation'] }}
    where {{ key }} in (select {{ key }} from {{ arg_dict['temp_relation'] }})
        or {{ fe_platform.delivery_window_filter('delivery_date') }};
    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
{%- endmacro %}
