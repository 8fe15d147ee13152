{{
    config(
        materialized='incremental',
        incremental_strategy='latest_delivery',
        unique_key='billing_line_key',
        on_schema_change='append_new_columns',
        **redshift_layout(dist='customer_key', sort=['billing_date'])
    )
}}

-- One row per billing document item, from the latest sap_billing delivery that holds it, with its USD value.
-- Incremental like fct_rx_weekly: the keys of the processed partitions are recomputed from every lake row.
with lake_rows as (

    select
        {{ surrogate_key(['billing_document', 'billing_item']) }} as billing_line_key,
        billing_document,
        billing_item,
        billing_type,
        billing_date,
        sales_org,
        sold_to,
        ship_to,
        material,
        quantity,
        sales_unit,
        net_value,
        currency,
        fx_rate_date,
        fx_rate_to_usd,
        net_value_usd,
        delivery_date,
        source_file,
        source_row
    from {{ ref('int_billing_lines_converted') }}

),

{{ latest_delivery_ctes('billing_line_key') }},

products_by_material as (

    -- A material sold under several NDCs maps to the lowest NDC.
    select
        sap_material,
        product_key,
        row_number() over (partition by sap_material order by ndc11) as material_rank
    from {{ ref('dim_product') }}
    where sap_material is not null

),

final as (

    select
        latest.billing_line_key,
        latest.billing_document,
        latest.billing_item,
        latest.billing_date,
        latest.billing_type,
        products_by_material.product_key,
        {{ surrogate_key(['latest.sold_to', 'latest.sales_org']) }} as customer_key,
        latest.material,
        latest.sales_org,
        latest.sold_to,
        latest.ship_to,
        latest.quantity,
        latest.sales_unit,
        latest.net_value,
        latest.currency,
        latest.fx_rate_date,
        latest.fx_rate_to_usd,
        latest.net_value_usd,
        latest.delivery_date,
        latest.source_file,
        latest.source_row
    from latest
    left join products_by_material
        on products_by_material.sap_material = latest.material
        and products_by_material.material_rank = 1

)

select * from final
