-- One row per SAP sold-to party and sales organisation billed in any delivery.
with lines as (

    select * from {{ ref('stg_sap__billing_lines') }}

),

customers as (

    select
        sold_to,
        sales_org,
        min(billing_date) as first_billing_date,
        max(billing_date) as last_billing_date
    from lines
    group by sold_to, sales_org

),

final as (

    select
        {{ surrogate_key(['sold_to', 'sales_org']) }} as customer_key,
        sold_to,
        sales_org,
        first_billing_date,
        last_billing_date
    from customers

)

select * from final
