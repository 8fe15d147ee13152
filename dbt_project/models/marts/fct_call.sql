-- One row per field call, latest last_modified wins; the HCP version in force on the call date.
with calls as (

    select * from {{ ref('int_calls_latest_modified') }}

),

accounts as (

    -- The NPI of each account as of its latest appearance, to find its HCP.
    select
        account_id,
        npi,
        row_number() over (partition by account_id order by snapshot_date desc) as appearance_rank
    from {{ ref('int_accounts_history') }}

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

identified as (

    select
        calls.*,
        {{ hcp_id('accounts.npi', 'null', 'calls.account_id') }} as hcp_id
    from calls
    left join accounts
        on accounts.account_id = calls.account_id
        and accounts.appearance_rank = 1

),

final as (

    select
        identified.call_id,
        hcps.hcp_key,
        identified.hcp_id,
        identified.account_id,
        {{ surrogate_key(['identified.territory_id']) }} as territory_key,
        identified.territory_id,
        identified.rep_id,
        identified.call_date,
        identified.call_datetime,
        identified.call_channel,
        identified.call_type,
        identified.call_status,
        identified.products_detailed,
        identified.last_modified,
        identified.delivery_date
    from identified
    left join hcps
        on hcps.hcp_id = identified.hcp_id
        and {{ hcp_version_at('hcps', 'identified.call_date') }}

)

select * from final
