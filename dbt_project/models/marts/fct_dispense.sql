{{
    config(
        materialized='incremental',
        incremental_strategy='latest_delivery',
        unique_key='dispense_id',
        on_schema_change='append_new_columns',
        **redshift_layout(dist='patient_token', sort=['dispense_date'])
    )
}}

-- One row per specialty-pharmacy dispense: the version with the latest updated_at wins (a REVERSED status
-- pulled later replaces DISPENSED; an older version pulled late does not). An incremental run recomputes the
-- dispenses of the sp_dispense partitions it processes (see macros/delivery_window.sql). hcp_key is the
-- prescriber's dim_hcp version in force on the dispense date when the row was written.
with lake_rows as (

    select
        dispense_id,
        pharmacy_ncpdp,
        patient_token,
        prescriber_npi,
        ndc11,
        dispense_date,
        fill_type,
        quantity,
        days_supply,
        payer_type,
        copay_usd,
        status,
        updated_at,
        delivery_date,
        source_file,
        source_row
    from {{ ref('stg_sp_hub__dispenses') }}

),

{{ latest_delivery_ctes('dispense_id', order_by='updated_at desc, delivery_date desc, source_file desc, source_row desc') }},

identified as (

    select
        latest.*,
        {{ hcp_id('prescriber_npi') }} as hcp_id
    from latest

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

final as (

    select
        identified.dispense_id,
        hcps.hcp_key,
        identified.hcp_id,
        {{ surrogate_key(['identified.ndc11']) }} as product_key,
        identified.pharmacy_ncpdp,
        identified.patient_token,
        identified.prescriber_npi,
        identified.ndc11,
        identified.dispense_date,
        identified.fill_type,
        identified.payer_type,
        identified.quantity,
        identified.days_supply,
        identified.copay_usd,
        identified.status,
        identified.updated_at,
        identified.delivery_date,
        identified.source_file,
        identified.source_row
    from identified
    left join hcps
        on hcps.hcp_id = identified.hcp_id
        and {{ hcp_version_at('hcps', 'identified.dispense_date') }}

)

select * from final
