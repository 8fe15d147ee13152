with source as (

    select * from {{ source('lake', 'sap_billing') }}

),

renamed as (

    select
        billing_document,
        billing_item,
        billing_type,
        cast(billing_date as date) as billing_date,
        sales_org,
        sold_to,
        ship_to,
        material,
        cast(quantity as double precision) as quantity,
        sales_unit,
        cast(net_value as numeric(18, 2)) as net_value,
        currency,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
