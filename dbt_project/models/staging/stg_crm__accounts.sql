with source as (

    select * from {{ source('lake', 'sfdc_account') }}

),

renamed as (

    select
        account_id,
        npi,
        first_name,
        last_name,
        specialty,
        email_hash,
        phone_hash,
        city,
        state,
        zip,
        territory_id,
        cast(pdrp_opt_out as boolean) as pdrp_opt_out,
        cast(is_active as boolean) as is_active,
        cast(last_modified as timestamp with time zone) as last_modified,
        _source_file as source_file,
        cast(_source_row as bigint) as source_row,
        cast(_data_date as date) as delivery_date,
        cast(_ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
