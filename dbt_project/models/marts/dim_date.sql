-- One row per calendar day from the week before the earliest fact date to the week after the latest,
-- so every date of the facts (and the whole week around it) is present.
with fact_dates as (

    select {{ add_days('min(week_ending)', -6) }} as first_day, max(week_ending) as last_day
    from {{ ref('stg_iqvia__rx') }}
    union all
    select min(billing_date), max(billing_date) from {{ ref('stg_sap__billing_lines') }}
    union all
    select min(call_date), max(call_date) from {{ ref('int_calls_latest_modified') }}
    union all
    select min(partition_date), max(partition_date) from {{ ref('stg_platform__deliveries') }}
    union all
    select min(dispense_date), max(dispense_date) from {{ ref('stg_sp_hub__dispenses') }}
    union all
    select min(event_date), max(event_date) from {{ ref('stg_events__attendances') }}
    union all
    select {{ utc_date('min(occurred_at)') }}, {{ utc_date('max(occurred_at)') }} from {{ ref('stg_engagement__events') }}

),

bounds as (

    select
        {{ add_days('coalesce(min(first_day), current_date)', -6) }} as first_day,
        {{ add_days('coalesce(max(last_day), current_date)', 6) }} as last_day
    from fact_dates

),

digits as (

    select 0 as d union all select 1 union all select 2 union all select 3 union all select 4
    union all select 5 union all select 6 union all select 7 union all select 8 union all select 9

),

numbers as (

    select d1.d + 10 * d2.d + 100 * d3.d + 1000 * d4.d + 10000 * d5.d as n
    from digits d1
    cross join digits d2
    cross join digits d3
    cross join digits d4
    cross join digits d5

),

days as (

    select {{ add_days('bounds.first_day', 'numbers.n') }} as date_day
    from bounds
    inner join numbers on numbers.n <= {{ days_between('bounds.first_day', 'bounds.last_day') }}

),

final as (

    select
        date_day,
        {{ week_ending('date_day') }} as week_ending,
        {{ month_start('date_day') }} as month_start,
        cast(extract(quarter from date_day) as integer) as quarter,
        cast(extract(year from date_day) as integer) as year,
        {{ day_of_week('date_day') }} as day_of_week
    from days

)

select * from final
