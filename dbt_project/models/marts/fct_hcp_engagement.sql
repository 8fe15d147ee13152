{{
    config(
        materialized='incremental',
        incremental_strategy='latest_delivery',
        unique_key='event_id',
        on_schema_change='append_new_columns',
        **redshift_layout(dist='event_id', sort=['date_day'])
    )
}}

-- One row per digital engagement event: the stream delivers at least once, so an event_id in several files
-- is kept once, from the first file that delivered it. An incremental run recomputes the events of the
-- hcp_engagement partitions it processes (see macros/delivery_window.sql). The HCP is found by NPI, else by
-- the CRM account's NPI, else by the account; hcp_key is its dim_hcp version in force that day when written.
with lake_rows as (

    select
        event_id,
        occurred_at,
        channel,
        action,
        npi,
        account_id,
        brand_code,
        content_id,
        delivery_date,
        source_file,
        source_row
    from {{ ref('stg_engagement__events') }}

),

{{ latest_delivery_ctes('event_id', order_by='delivery_date, source_file, source_row') }},

accounts as (

    -- The NPI of each account as of its latest appearance, to find its HCP.
    select
        account_id,
        npi,
        row_number() over (partition by account_id order by snapshot_date desc) as appearance_rank
    from {{ ref('int_accounts_history') }}

),

identified as (

    select
        latest.*,
        {{ utc_date('latest.occurred_at') }} as date_day,
        {{ hcp_id('coalesce(latest.npi, accounts.npi)', 'null', 'latest.account_id') }} as hcp_id
    from latest
    left join accounts
        on accounts.account_id = latest.account_id
        and accounts.appearance_rank = 1

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

final as (

    select
        identified.event_id,
        identified.occurred_at,
        identified.date_day,
        hcps.hcp_key,
        identified.hcp_id,
        identified.npi,
        identified.account_id,
        identified.channel,
        identified.action,
        identified.brand_code,
        identified.content_id,
        identified.delivery_date,
        identified.source_file,
        identified.source_row
    from identified
    left join hcps
        on hcps.hcp_id = identified.hcp_id
        and {{ hcp_version_at('hcps', 'identified.date_day') }}

)

select * from final
