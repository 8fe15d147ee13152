-- One row per CRM account per full snapshot it appears in; the input of dim_hcp's SCD type 2.
with accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

ranked as (

    -- An account appears once per snapshot; should a snapshot repeat it, its last row wins.
    select
        accounts.*,
        row_number() over (
            partition by account_id, delivery_date
            order by source_row desc
        ) as row_rank
    from accounts

),

latest_snapshot as (

    select max(delivery_date) as latest_snapshot_date from accounts

),

final as (

    select
        ranked.account_id,
        ranked.delivery_date as snapshot_date,
        ranked.npi,
        ranked.first_name,
        ranked.last_name,
        ranked.specialty,
        ranked.city,
        ranked.state,
        ranked.zip,
        ranked.territory_id,
        ranked.pdrp_opt_out,
        ranked.is_active,
        ranked.last_modified,
        latest_snapshot.latest_snapshot_date,
        ranked.delivery_date = latest_snapshot.latest_snapshot_date as is_in_latest_snapshot
    from ranked
    cross join latest_snapshot
    where ranked.row_rank = 1

)

select * from final
