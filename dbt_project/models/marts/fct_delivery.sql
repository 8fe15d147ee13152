-- One row per delivery in the platform's log (loaded, rejected or duplicate).
with deliveries as (

    select * from {{ ref('stg_platform__deliveries') }}

),

final as (

    select
        {{ surrogate_key(['feed', 'landing_key', 'sha256', 'outcome', 'ingested_at']) }} as delivery_key,
        feed,
        partition_date,
        landing_key,
        sha256,
        outcome,
        rows_in,
        rows_valid,
        rows_quarantined,
        reason,
        ingested_at
    from deliveries

)

select * from final
