-- One row per prescriber version: SCD type 2 on specialty and territory_id, built from the CRM
-- account snapshots; IQVIA prescribers join by NPI, and those with no NPI or no CRM match get one
-- version of their own with an unknown (null) territory. The latest snapshot is the truth: an
-- account missing from it keeps its last version (is_current) but is no longer active.
with account_snapshots as (

    select * from {{ ref('int_accounts_history') }}

),

prescribers as (

    select * from {{ ref('int_rx_prescribers_identified') }}

),

account_latest as (

    -- Type 1 attributes (names, NPI, PDRP opt-out, ...) come from the account's latest appearance.
    select
        account_snapshots.*,
        {{ hcp_id('npi', 'null', 'account_id') }} as hcp_id,
        row_number() over (partition by account_id order by snapshot_date desc) as appearance_rank
    from account_snapshots

),

accounts_by_hcp as (

    -- Two CRM accounts with one NPI are one HCP: keep the account of the latest snapshot.
    select
        account_latest.*,
        row_number() over (
            partition by hcp_id
            order by snapshot_date desc, last_modified desc, account_id
        ) as account_rank
    from account_latest
    where appearance_rank = 1

),

hcp_accounts as (

    select * from accounts_by_hcp where account_rank = 1

),

tracked as (

    select
        account_snapshots.account_id,
        account_snapshots.snapshot_date,
        account_snapshots.specialty,
        account_snapshots.territory_id,
        lag(account_snapshots.specialty) over (
            partition by account_snapshots.account_id order by account_snapshots.snapshot_date
        ) as previous_specialty,
        lag(account_snapshots.territory_id) over (
            partition by account_snapshots.account_id order by account_snapshots.snapshot_date
        ) as previous_territory_id,
        row_number() over (
            partition by account_snapshots.account_id order by account_snapshots.snapshot_date
        ) as snapshot_number
    from account_snapshots
    inner join hcp_accounts on hcp_accounts.account_id = account_snapshots.account_id

),

changes as (

    select
        tracked.*,
        case
            when snapshot_number = 1 then 1
            when coalesce(specialty, '~') <> coalesce(previous_specialty, '~') then 1
            when coalesce(territory_id, '~') <> coalesce(previous_territory_id, '~') then 1
            else 0
        end as is_change
    from tracked

),

numbered as (

    select
        changes.*,
        sum(is_change) over (
            partition by account_id order by snapshot_date rows between unbounded preceding and current row
        ) as version_number
    from changes

),

versions as (

    select
        account_id,
        version_number,
        min(snapshot_date) as valid_from,
        max(specialty) as specialty,
        max(territory_id) as territory_id
    from numbered
    group by account_id, version_number

),

versions_bounded as (

    select
        versions.*,
        coalesce(
            lead(valid_from) over (partition by account_id order by version_number),
            cast('9999-12-31' as date)
        ) as valid_to
    from versions

),

prescriber_by_hcp as (

    select hcp_id, min(prescriber_id) as prescriber_id, min(first_delivery_date) as first_delivery_date
    from prescribers
    group by hcp_id

),

crm_versions as (

    select
        hcp_accounts.hcp_id,
        hcp_accounts.npi,
        prescriber_by_hcp.prescriber_id,
        hcp_accounts.account_id,
        hcp_accounts.first_name,
        hcp_accounts.last_name,
        versions_bounded.specialty,
        hcp_accounts.state,
        hcp_accounts.zip,
        versions_bounded.territory_id,
        hcp_accounts.pdrp_opt_out,
        hcp_accounts.is_in_latest_snapshot and coalesce(hcp_accounts.is_active, true) as is_active,
        'CRM' as hcp_source,
        cast(versions_bounded.version_number as integer) as version_number,
        versions_bounded.valid_from,
        versions_bounded.valid_to,
        versions_bounded.valid_to = cast('9999-12-31' as date) as is_current
    from versions_bounded
    inner join hcp_accounts on hcp_accounts.account_id = versions_bounded.account_id
    left join prescriber_by_hcp on prescriber_by_hcp.hcp_id = hcp_accounts.hcp_id

),

iqvia_only as (

    select
        prescriber_by_hcp.hcp_id,
        prescribers.npi,
        prescriber_by_hcp.prescriber_id,
        cast(null as varchar) as account_id,
        cast(null as varchar) as first_name,
        cast(null as varchar) as last_name,
        cast(null as varchar) as specialty,
        cast(null as varchar) as state,
        cast(null as varchar) as zip,
        cast(null as varchar) as territory_id,
        cast(null as boolean) as pdrp_opt_out,
        cast(null as boolean) as is_active,
        'IQVIA' as hcp_source,
        1 as version_number,
        prescriber_by_hcp.first_delivery_date as valid_from,
        cast('9999-12-31' as date) as valid_to,
        true as is_current
    from prescriber_by_hcp
    inner join prescribers
        on prescribers.hcp_id = prescriber_by_hcp.hcp_id
        and prescribers.prescriber_id = prescriber_by_hcp.prescriber_id
    where not exists (select 1 from hcp_accounts where hcp_accounts.hcp_id = prescriber_by_hcp.hcp_id)

),

unioned as (

    select * from crm_versions
    union all
    select * from iqvia_only

),

final as (

    -- The key names the HCP's n-th version, not its dates: when an IQVIA-only prescriber is matched to a CRM
    -- account later, or an earlier delivery moves its first date, version 1 keeps its key, so the rows the
    -- incremental facts wrote with it still find it (new snapshots only ever add versions after the last).
    select
        {{ surrogate_key(['hcp_id', 'version_number']) }} as hcp_key,
        unioned.*
    from unioned

)

select * from final
