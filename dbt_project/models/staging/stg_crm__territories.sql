with source as (

    select * from {{ source('lake', 'sfdc_territory') }}

),

renamed as (

    select
        territory_id,
        territory_name,
        district_id,
        district_name,
        region_id,
        region_name,
        rep_id,
        rep_name,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
