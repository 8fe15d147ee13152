with source as (

    select * from {{ source('lake', 'product_master') }}

),

renamed as (

    select
        ndc11,
        sap_material,
        brand_code,
        brand_name,
        molecule,
        market,
        manufacturer,
        cast(is_own_brand as boolean) as is_own_brand,
        cast(units_per_pack as bigint) as units_per_pack,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
