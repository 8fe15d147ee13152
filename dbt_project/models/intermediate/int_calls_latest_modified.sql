-- One row per call: the version with the latest last_modified (then the latest delivery) wins.
with calls as (

    select * from {{ ref('stg_crm__calls') }}

),

ranked as (

    select
        calls.*,
        row_number() over (
            partition by call_id
            order by
                coalesce(last_modified, cast('1900-01-01 00:00:00+00' as timestamp with time zone)) desc,
                delivery_date desc,
                source_row desc
        ) as version_rank
    from calls

),

final as (

    select
        call_id,
        account_id,
        rep_id,
        territory_id,
        call_datetime,
        {{ utc_date('call_datetime') }} as call_date,
        call_channel,
        call_type,
        products_detailed,
        call_status,
        last_modified,
        delivery_date
    from ranked
    where version_rank = 1

)

select * from final
