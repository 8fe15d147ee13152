with source as (

    select * from {{ source('lake', 'deliveries') }}

),

renamed as (

    select
        feed,
        landing_key,
        cast({{ adapter.quote("partition") }} as date) as partition_date,
        sha256,
        outcome,
        cast(rows_in as bigint) as rows_in,
        cast(rows_valid as bigint) as rows_valid,
        cast(rows_quarantined as bigint) as rows_quarantined,
        reason,
        cast(ingested_at as timestamp with time zone) as ingested_at
    from source

)

select * from renamed
