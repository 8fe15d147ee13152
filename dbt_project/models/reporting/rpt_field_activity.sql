-- Territory x rep x month: submitted calls by channel, HCPs reached and calls per reached HCP.
with calls as (

    select * from {{ ref('fct_call') }}

),

territories as (

    select * from {{ ref('dim_territory') }}

),

reps as (

    select rep_id, max(rep_name) as rep_name
    from territories
    where rep_id is not null
    group by rep_id

),

monthly as (

    select
        territory_id,
        rep_id,
        {{ month_start('call_date') }} as month_start,
        count(*) as calls_total,
        sum(case when call_channel = 'IN_PERSON' then 1 else 0 end) as calls_in_person,
        sum(case when call_channel = 'VIRTUAL' then 1 else 0 end) as calls_virtual,
        sum(case when call_channel = 'PHONE' then 1 else 0 end) as calls_phone,
        sum(case when call_channel = 'EMAIL' then 1 else 0 end) as calls_email,
        count(distinct hcp_id) as hcps_reached
    from calls
    where call_status = 'SUBMITTED'
    group by territory_id, rep_id, {{ month_start('call_date') }}

),

final as (

    select
        cast(monthly.territory_id as varchar) as territory_id,
        cast(territories.territory_name as varchar) as territory_name,
        cast(territories.region_name as varchar) as region_name,
        cast(monthly.rep_id as varchar) as rep_id,
        cast(reps.rep_name as varchar) as rep_name,
        cast(monthly.month_start as date) as month_start,
        cast(monthly.calls_total as bigint) as calls_total,
        cast(monthly.calls_in_person as bigint) as calls_in_person,
        cast(monthly.calls_virtual as bigint) as calls_virtual,
        cast(monthly.calls_phone as bigint) as calls_phone,
        cast(monthly.calls_email as bigint) as calls_email,
        cast(monthly.hcps_reached as bigint) as hcps_reached,
        cast({{ safe_divide('monthly.calls_total', 'monthly.hcps_reached') }} as double precision) as call_frequency
    from monthly
    left join territories on territories.territory_id = monthly.territory_id
    left join reps on reps.rep_id = monthly.rep_id

)

select * from final
