{#-
  The deliveries an incremental fact processes in this run:
  - vars min_date and max_date given (Dagster's partition window): deliveries whose data date is in it;
  - otherwise, in an incremental run: deliveries newer than the newest the table holds;
  - otherwise (first build, --full-refresh): every delivery.
-#}
{% macro delivery_window_filter(column) -%}
    {%- set min_date = var('min_date', none) -%}
    {%- set max_date = var('max_date', none) -%}
    {%- if min_date or max_date -%}
        {%- set lo = fe_platform.checked_date_var('min_date', min_date or max_date) -%}
        {%- set hi = fe_platform.checked_date_var('max_date', max_date or min_date) -%}
        {{ column }} between cast('{{ lo }}' as date) and cast('{{ hi }}' as date)
    {%- elif is_incremental() -%}
        {{ column }} > (select coalesce(max(delivery_date), cast('1900-01-01' as date)) from {{ this }})
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{#- A --vars date must be YYYY-MM-DD: it is inlined in SQL, so anything else is refused. -#}
{% macro checked_date_var(name, value) -%}
    {%- set text = value | string | trim -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be a date YYYY-MM-DD, got " ~ text) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{#-
  Latest delivery wins, shared by the incremental facts. After a CTE `incoming` that selects `key`,
  then `columns` (delivery_date and source_row among them), then `1 as is_incoming`, this emits the
  CTEs `candidates` (incoming rows, and in an incremental run the rows the table already holds for the
  same keys) and `ranked` (`delivery_rank` = 1 for the row of the latest delivery per key; a tie goes to
  the incoming row), so a re-run of an older partition after a newer one changes nothing.
-#}
{% macro latest_delivery_ctes(key, columns) -%}
{% if is_incremental() %}
existing as (

    select
        {{ key }},
        {{ columns | join(',\n        ') }},
        0 as is_incoming
    from {{ this }}
    where {{ key }} in (select {{ key }} from incoming)

),
{% endif %}

candidates as (

    select * from incoming
    {% if is_incremental() %}
    union all
    select * from existing
    {% endif %}

),

ranked as (

    select
        candidates.*,
        row_number() over (
            partition by {{ key }}
            order by delivery_date desc, is_incoming desc, source_row desc
        ) as delivery_rank
    from candidates

)
{%- endmacro %}
