-- One row per event attendance: the version with the latest updated_at (then the latest delivery) wins.
with attendances as (

    select * from {{ ref('stg_events__attendances') }}

),

ranked as (

    select
        attendances.*,
        row_number() over (
            partition by attendance_id
            order by updated_at desc, delivery_date desc, source_file desc, source_row desc
        ) as version_rank
    from attendances

),

final as (

    select
        attendance_id,
        event_id,
        event_type,
        event_date,
        brand_code,
        npi,
        role,
        attended,
        meal_value_usd,
        updated_at,
        delivery_date
    from ranked
    where version_rank = 1

)

select * from final
