-- Every IQVIA prescriber (prescriber_id, npi) seen in any delivery, with its durable HCP identity.
with rx as (

    select * from {{ ref('stg_iqvia__rx') }}

),

prescribers as (

    select
        prescriber_id,
        npi,
        min(delivery_date) as first_delivery_date,
        max(delivery_date) as last_delivery_date
    from rx
    group by prescriber_id, npi

),

final as (

    select
        {{ hcp_id('npi', 'prescriber_id') }} as hcp_id,
        prescriber_id,
        npi,
        first_delivery_date,
        last_delivery_date
    from prescribers

)

select * from final
