-- One row per event attendance (latest updated_at wins), with the HCP's dim_hcp version in force on the
-- event date (null when neither CRM nor IQVIA knows the NPI).
with attendances as (

    select * from {{ ref('int_attendances_latest_updated') }}

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

identified as (

    select
        attendances.*,
        {{ hcp_id('attendances.npi') }} as hcp_id
    from attendances

),

final as (

    select
        identified.attendance_id,
        identified.event_id,
        identified.event_type,
        identified.event_date,
        hcps.hcp_key,
        identified.hcp_id,
        identified.npi,
        identified.brand_code,
        identified.role,
        identified.attended,
        identified.meal_value_usd,
        identified.updated_at,
        identified.delivery_date
    from identified
    left join hcps
        on hcps.hcp_id = identified.hcp_id
        and {{ hcp_version_at('hcps', 'identified.event_date') }}

)

select * from final
