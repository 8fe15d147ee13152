with source as (

    select * from {{ source('lake', 'fx_rates') }}

),

renamed as (

    select
        cast(rate_date as date) as rate_date,
        base_currency,
        quote_currency,
        cast(rate as double precision) as rate,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
