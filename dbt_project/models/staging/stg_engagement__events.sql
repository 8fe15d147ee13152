with source as (

    select * from {{ source('lake', 'hcp_engagement') }}

),

renamed as (

    select
        event_id,
        cast(occurred_at as timestamp with time zone) as occurred_at,
        channel,
        action,
        npi,
        account_id,
        brand_code,
        content_id,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
