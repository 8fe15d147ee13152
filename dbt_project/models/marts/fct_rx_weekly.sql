{{
    config(
        materialized='incremental',
        incremental_strategy='latest_delivery',
        unique_key='rx_weekly_key',
        on_schema_change='append_new_columns',
        **redshift_layout(dist='hcp_key', sort=['week_ending', 'product_key'])
    )
}}

-- Prescriber x product x week_ending x payer_type x channel; for every key the row of the latest
-- delivery that holds it (a restated week replaces its earlier values). An incremental run recomputes
-- the keys of the iqvia_rx partitions it processes (see macros/delivery_window.sql). hcp_key is the
-- dim_hcp version in force on week_ending when the row was written; dim_hcp keeps that key forever.
with lake_rows as (

    select
        {{ surrogate_key(['prescriber_id', 'ndc11', 'week_ending', 'payer_type', 'channel']) }} as rx_weekly_key,
        prescriber_id,
        npi,
        ndc11,
        week_ending,
        payer_type,
        channel,
        nrx,
        trx,
        nbrx,
        nqty,
        tqty,
        delivery_date,
        source_file,
        source_row
    from {{ ref('stg_iqvia__rx') }}

),

{{ latest_delivery_ctes('rx_weekly_key') }},

identified as (

    select
        latest.*,
        {{ hcp_id('npi', 'prescriber_id') }} as hcp_id
    from latest

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

final as (

    select
        identified.rx_weekly_key,
        hcps.hcp_key,
        identified.hcp_id,
        {{ surrogate_key(['identified.ndc11']) }} as product_key,
        identified.prescriber_id,
        identified.npi,
        identified.ndc11,
        identified.week_ending,
        identified.payer_type,
        identified.channel,
        identified.nrx,
        identified.trx,
        identified.nbrx,
        identified.nqty,
        identified.tqty,
        identified.delivery_date,
        identified.source_file,
        identified.source_row
    from identified
    left join hcps
        on hcps.hcp_id = identified.hcp_id
        and {{ hcp_version_at('hcps', 'identified.week_ending') }}

)

select * from final
