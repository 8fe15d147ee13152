with source as (

    select * from {{ source('lake', 'hcp_event') }}

),

renamed as (

    select
        attendance_id,
        event_id,
        event_type,
        cast(event_date as date) as event_date,
        brand_code,
        npi,
        role,
        cast(attended as boolean) as attended,
        cast(meal_value_usd as numeric(18, 2)) as meal_value_usd,
        cast(updated_at as timestamp with time zone) as updated_at,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
