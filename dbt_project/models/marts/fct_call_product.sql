-- One row per call and detailed brand (products_detailed holds 0 to 3 brand codes). product_key is
-- the brand's lowest NDC in dim_product, null when the brand is unknown.
with calls as (

    select call_id, products_detailed from {{ ref('fct_call') }}
    where products_detailed is not null

),

positions as (

    select 1 as position union all select 2 union all select 3

),

detailed as (

    select
        calls.call_id,
        positions.position,
        {{ split_part_or_null('calls.products_detailed', ';', 'positions.position') }} as brand_code
    from calls
    cross join positions

),

brand_products as (

    select
        brand_code,
        product_key,
        row_number() over (partition by brand_code order by ndc11) as brand_rank
    from {{ ref('dim_product') }}

),

final as (

    select distinct
        {{ surrogate_key(['detailed.call_id', 'detailed.brand_code']) }} as call_product_key,
        detailed.call_id,
        detailed.brand_code,
        brand_products.product_key
    from detailed
    left join brand_products
        on brand_products.brand_code = detailed.brand_code
        and brand_products.brand_rank = 1
    where detailed.brand_code is not null

)

select * from final
