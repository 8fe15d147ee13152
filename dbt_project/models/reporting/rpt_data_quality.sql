-- Feed x partition x delivery: rows in/valid/quarantined, the quarantined share (a fraction), the number of files
-- of the feed's partition that were rejected whole, and the lag from the data date to ingestion.
with deliveries as (

    select * from {{ ref('fct_delivery') }}

),

final as (

    select
        cast(feed as varchar) as feed,
        cast(partition_date as date) as partition_date,
        cast(landing_key as varchar) as landing_key,
        cast(outcome as varchar) as outcome,
        cast(rows_in as bigint) as rows_in,
        cast(rows_valid as bigint) as rows_valid,
        cast(rows_quarantined as bigint) as rows_quarantined,
        cast({{ safe_divide('rows_quarantined', 'rows_in') }} as double precision) as quarantine_pct,
        cast(sum(case when outcome = 'rejected' then 1 else 0 end) over (partition by feed, partition_date)
            as bigint) as rejected_files,
        cast(ingested_at as timestamp with time zone) as ingested_at,
        cast(
            ({{ epoch_seconds('ingested_at') }} - {{ epoch_seconds('cast(partition_date as timestamp)') }}) / 3600.0
            as double precision
        ) as freshness_lag_hours
    from deliveries

)

select * from final
