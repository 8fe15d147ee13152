with source as (

    select * from {{ source('lake', 'sfdc_call') }}

),

renamed as (

    select
        call_id,
        account_id,
        rep_id,
        territory_id,
        cast(call_datetime as timestamp with time zone) as call_datetime,
        call_channel,
        call_type,
        products_detailed,
        call_status,
        cast(last_modified as timestamp with time zone) as last_modified,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
