{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='rx_weekly_key',
        on_schema_change='append_new_columns',
        **redshift_layout(dist='hcp_key', sort=['week_ending', 'product_key'])
    )
}}

-- Prescriber x product x week_ending x payer_type x channel; for every key the row of the latest
-- delivery that holds it. An incremental run takes the deliveries of the window (vars min_date,
-- max_date) and competes their rows with the rows the table already holds for the same keys, so a
-- re-run of an older partition after a newer one changes nothing and a restated week replaces its
-- earlier values.
{% set columns = [
    'prescriber_id', 'npi', 'ndc11', 'week_ending', 'payer_type', 'channel', 'nrx', 'trx', 'nbrx',
    'nqty', 'tqty', 'delivery_date', 'source_file', 'source_row'
] %}
with incoming as (

    select
        {{ surrogate_key(['prescriber_id', 'ndc11', 'week_ending', 'payer_type', 'channel']) }} as rx_weekly_key,
        {{ columns | join(',\n        ') }},
        1 as is_incoming
    from {{ ref('stg_iqvia__rx') }}
    where {{ delivery_window_filter('delivery_date') }}

),

{{ latest_delivery_ctes('rx_weekly_key', columns) }},

latest as (

    select
        ranked.*,
        {{ hcp_id('npi', 'prescriber_id') }} as hcp_id
    from ranked
    where delivery_rank = 1

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

final as (

    select
        latest.rx_weekly_key,
        hcps.hcp_key,
        latest.hcp_id,
        {{ surrogate_key(['latest.ndc11']) }} as product_key,
        latest.prescriber_id,
        latest.npi,
        latest.ndc11,
        latest.week_ending,
        latest.payer_type,
        latest.channel,
        latest.nrx,
        latest.trx,
        latest.nbrx,
        latest.nqty,
        latest.tqty,
        latest.delivery_date,
        latest.source_file,
        latest.source_row
    from latest
    left join hcps
        on hcps.hcp_id = latest.hcp_id
        and {{ hcp_version_at('hcps', 'latest.week_ending') }}

)

select * from final
