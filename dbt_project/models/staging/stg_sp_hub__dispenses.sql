with source as (

    select * from {{ source('lake', 'sp_dispense') }}

),

renamed as (

    select
        cast(dispense_id as bigint) as dispense_id,
        pharmacy_ncpdp,
        patient_token,
        prescriber_npi,
        ndc11,
        cast(dispense_date as date) as dispense_date,
        fill_type,
        cast(quantity as double precision) as quantity,
        cast(days_supply as bigint) as days_supply,
        payer_type,
        cast(copay_usd as numeric(18, 2)) as copay_usd,
        status,
        cast(updated_at as timestamp with time zone) as updated_at,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
