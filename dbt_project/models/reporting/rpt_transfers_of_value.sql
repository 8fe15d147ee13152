-- HCP x year: meals (transfers of value) and event attendances per HCP, for the Sunshine Act (Open Payments)
-- report. A compliance report that lists HCPs by name, PDRP opt-outs included: it carries no prescription, and
-- only analyst and data_engineer read it (config meta fe_platform.readers; macros/grants.sql).
with attendances as (

    select * from {{ ref('fct_event_attendance') }}

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

by_hcp_year as (

    select
        npi,
        cast(extract(year from event_date) as integer) as year,
        sum(coalesce(meal_value_usd, 0)) as meal_value_usd,
        sum(case when attended then 1 else 0 end) as attendances
    from attendances
    group by npi, cast(extract(year from event_date) as integer)

),

current_hcps as (

    select hcp_id, hcp_key, first_name, last_name
    from hcps
    where is_current

),

final as (

    select
        cast(current_hcps.hcp_key as varchar) as hcp_key,
        cast(by_hcp_year.npi as varchar) as npi,
        cast(current_hcps.first_name as varchar) as first_name,
        cast(current_hcps.last_name as varchar) as last_name,
        cast(by_hcp_year.year as integer) as year,
        cast(by_hcp_year.meal_value_usd as numeric(18, 2)) as meal_value_usd,
        cast(by_hcp_year.attendances as bigint) as attendances
    from by_hcp_year
    left join current_hcps on current_hcps.hcp_id = {{ hcp_id('by_hcp_year.npi') }}

)

select * from final
