-- One row per territory ever in the hierarchy; attributes from the latest snapshot that holds it.
with territories as (

    select * from {{ ref('stg_crm__territories') }}

),

ranked as (

    select
        territories.*,
        row_number() over (partition by territory_id order by delivery_date desc, source_row desc) as snapshot_rank,
        max(delivery_date) over () as latest_snapshot_date
    from territories

),

final as (

    select
        {{ surrogate_key(['territory_id']) }} as territory_key,
        territory_id,
        territory_name,
        district_id,
        district_name,
        region_id,
        region_name,
        rep_id,
        rep_name,
        delivery_date = latest_snapshot_date as is_in_latest_snapshot
    from ranked
    where snapshot_rank = 1

)

select * from final
