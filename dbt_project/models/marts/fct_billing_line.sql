{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='billing_line_key',
        on_schema_change='append_new_columns',
        **redshift_layout(dist='customer_key', sort=['billing_date'])
    )
}}

-- One row per billing document item, from the latest delivery that holds it, with its USD value.
-- Incremental like fct_rx_weekly: the window's deliveries compete with the rows already held.
{% set columns = [
    'billing_document', 'billing_item', 'billing_type', 'billing_date', 'sales_org', 'sold_to',
    'ship_to', 'material', 'quantity', 'sales_unit', 'net_value', 'currency', 'fx_rate_date',
    'fx_rate_to_usd', 'net_value_usd', 'delivery_date', 'source_file', 'source_row'
] %}
with incoming as (

    select
        {{ surrogate_key(['billing_document', 'billing_item']) }} as billing_line_key,
        {{ columns | join(',\n        ') }},
        1 as is_incoming
    from {{ ref('int_billing_lines_converted') }}
    where {{ delivery_window_filter('delivery_date') }}

),

{{ latest_delivery_ctes('billing_line_key', columns) }},

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
        ranked.billing_line_key,
        ranked.billing_document,
        ranked.billing_item,
        ranked.billing_date,
        ranked.billing_type,
        products_by_material.product_key,
        {{ surrogate_key(['ranked.sold_to', 'ranked.sales_org']) }} as customer_key,
        ranked.material,
        ranked.sales_org,
        ranked.sold_to,
        ranked.ship_to,
        ranked.quantity,
        ranked.sales_unit,
        ranked.net_value,
        ranked.currency,
        ranked.fx_rate_date,
        ranked.fx_rate_to_usd,
        ranked.net_value_usd,
        ranked.delivery_date,
        ranked.source_file,
        ranked.source_row
    from ranked
    left join products_by_material
        on products_by_material.sap_material = ranked.material
        and products_by_material.material_rank = 1
    where ranked.delivery_rank = 1

)

select * from final
