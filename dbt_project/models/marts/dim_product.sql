-- One row per NDC ever in the product master; attributes from the latest snapshot that holds it.
with products as (

    select * from {{ ref('stg_product_master__products') }}

),

ranked as (

    select
        products.*,
        row_number() over (partition by ndc11 order by delivery_date desc, source_row desc) as snapshot_rank,
        max(delivery_date) over () as latest_snapshot_date
    from products

),

final as (

    select
        {{ surrogate_key(['ndc11']) }} as product_key,
        ndc11,
        sap_material,
        brand_code,
        brand_name,
        molecule,
        market,
        manufacturer,
        is_own_brand,
        units_per_pack,
        delivery_date = latest_snapshot_date as is_in_latest_master,
        delivery_date as master_snapshot_date
    from ranked
    where snapshot_rank = 1

)

select * from final
