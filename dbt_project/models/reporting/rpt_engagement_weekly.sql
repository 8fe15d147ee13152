-- Territory x week: every touch of an HCP by any channel: submitted calls (in the call's territory), event
-- attendances, email opens and portal visits (in the HCP's territory, from the dim_hcp version of the touch),
-- the distinct HCPs they touched, and touches per engaged HCP. Weeks from the first to the last with a touch.
-- Counts include PDRP opt-outs; no HCP is listed.
with calls as (

    select * from {{ ref('fct_call') }}

),

attendances as (

    select * from {{ ref('fct_event_attendance') }}

),

engagement as (

    select * from {{ ref('fct_hcp_engagement') }}

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

territories as (

    select * from {{ ref('dim_territory') }}

),

dates as (

    select * from {{ ref('dim_date') }}

),

touches as (

    select territory_id, {{ week_ending('call_date') }} as week_ending, hcp_id, 'submitted_call' as touch
    from calls
    where call_status = 'SUBMITTED'

    union all

    select hcps.territory_id, {{ week_ending('attendances.event_date') }}, attendances.hcp_id, 'event_attendance'
    from attendances
    inner join hcps on hcps.hcp_key = attendances.hcp_key
    where attendances.attended

    union all

    select
        hcps.territory_id,
        {{ week_ending('engagement.date_day') }},
        engagement.hcp_id,
        case when engagement.channel = 'EMAIL' then 'email_open' else 'portal_visit' end
    from engagement
    inner join hcps on hcps.hcp_key = engagement.hcp_key
    where (engagement.channel = 'EMAIL' and engagement.action = 'OPENED')
        or (engagement.channel = 'PORTAL' and engagement.action = 'VISITED')

),

weekly as (

    select
        territory_id,
        week_ending,
        sum(case when touch = 'submitted_call' then 1 else 0 end) as submitted_calls,
        sum(case when touch = 'event_attendance' then 1 else 0 end) as event_attendances,
        sum(case when touch = 'email_open' then 1 else 0 end) as email_opens,
        sum(case when touch = 'portal_visit' then 1 else 0 end) as portal_visits,
        count(distinct hcp_id) as hcps_engaged,
        count(*) as touches
    from touches
    where territory_id is not null
    group by territory_id, week_ending

),

weeks as (

    select distinct dates.week_ending
    from dates
    where dates.week_ending between (select min(week_ending) from weekly) and (select max(week_ending) from weekly)

),

territory_weeks as (

    select territories.territory_id, territories.territory_name, territories.region_name, weeks.week_ending
    from territories
    cross join weeks

),

final as (

    select
        cast(territory_weeks.territory_id as varchar) as territory_id,
        cast(territory_weeks.territory_name as varchar) as territory_name,
        cast(territory_weeks.region_name as varchar) as region_name,
        cast(territory_weeks.week_ending as date) as week_ending,
        cast(coalesce(weekly.submitted_calls, 0) as bigint) as submitted_calls,
        cast(coalesce(weekly.event_attendances, 0) as bigint) as event_attendances,
        cast(coalesce(weekly.email_opens, 0) as bigint) as email_opens,
        cast(coalesce(weekly.portal_visits, 0) as bigint) as portal_visits,
        cast(coalesce(weekly.hcps_engaged, 0) as bigint) as hcps_engaged,
        cast(coalesce(weekly.touches, 0) as bigint) as touches,
        cast({{ safe_divide('weekly.touches', 'weekly.hcps_engaged') }} as double precision) as touches_per_engaged_hcp
    from territory_weeks
    left join weekly
        on weekly.territory_id = territory_weeks.territory_id
        and weekly.week_ending = territory_weeks.week_ending

)

select * from final
