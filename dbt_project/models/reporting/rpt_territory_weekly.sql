-- Territory x week: own-brand TRx and NBRx of the territory's HCPs (the HCP version in force that
-- week), net sales in USD allocated from national own-brand sales by the territory's share of each
-- brand's TRx that week (SAP bills wholesalers, not territories), submitted calls, HCPs reached
-- (distinct HCPs with a submitted call), HCPs with own-brand TRx in the 13 weeks to the week, and
-- reach_pct: the fraction (0 to 1) of those HCPs reached that week. PDRP opt-outs are counted, never listed.
with rx as (

    select * from {{ ref('fct_rx_weekly') }}

),

products as (

    select * from {{ ref('dim_product') }}

),

hcps as (

    select * from {{ ref('dim_hcp') }}

),

territories as (

    select * from {{ ref('dim_territory') }}

),

calls as (

    select * from {{ ref('fct_call') }}

),

billing as (

    select * from {{ ref('fct_billing_line') }}

),

dates as (

    select * from {{ ref('dim_date') }}

),

weeks as (

    -- the weeks IQVIA has delivered: a later week (calls of a week not over yet) would read as no TRx, no reach
    select distinct dates.week_ending
    from dates
    where dates.week_ending between (select min(week_ending) from rx) and (select max(week_ending) from rx)

),

own_rx as (

    select
        rx.hcp_id,
        hcps.territory_id,
        products.brand_code,
        rx.week_ending,
        rx.trx,
        rx.nbrx
    from rx
    inner join products
        on products.product_key = rx.product_key
        and products.is_own_brand
    left join hcps
        on hcps.hcp_id = rx.hcp_id
        and {{ hcp_version_at('hcps', 'rx.week_ending') }}

),

own_rx_by_territory as (

    select territory_id, week_ending, sum(trx) as own_trx, sum(nbrx) as own_nbrx
    from own_rx
    where territory_id is not null
    group by territory_id, week_ending

),

brand_trx_national as (

    select brand_code, week_ending, sum(trx) as brand_trx
    from own_rx
    group by brand_code, week_ending

),

brand_trx_by_territory as (

    select territory_id, brand_code, week_ending, sum(trx) as territory_brand_trx
    from own_rx
    where territory_id is not null
    group by territory_id, brand_code, week_ending

),

brand_sales as (

    select
        products.brand_code,
        {{ week_ending('billing.billing_date') }} as week_ending,
        sum(billing.net_value_usd) as net_sales_usd
    from billing
    inner join products
        on products.product_key = billing.product_key
        and products.is_own_brand
    group by products.brand_code, {{ week_ending('billing.billing_date') }}

),

allocated_sales as (

    select
        brand_trx_by_territory.territory_id,
        brand_trx_by_territory.week_ending,
        sum(
            cast(brand_sales.net_sales_usd as double precision)
            * brand_trx_by_territory.territory_brand_trx / brand_trx_national.brand_trx
        ) as net_sales_usd
    from brand_trx_by_territory
    inner join brand_trx_national
        on brand_trx_national.brand_code = brand_trx_by_territory.brand_code
        and brand_trx_national.week_ending = brand_trx_by_territory.week_ending
        and brand_trx_national.brand_trx > 0
    inner join brand_sales
        on brand_sales.brand_code = brand_trx_by_territory.brand_code
        and brand_sales.week_ending = brand_trx_by_territory.week_ending
    group by brand_trx_by_territory.territory_id, brand_trx_by_territory.week_ending

),

submitted as (

    select
        territory_id,
        {{ week_ending('call_date') }} as week_ending,
        hcp_id
    from calls
    where call_status = 'SUBMITTED'

),

submitted_calls as (

    select territory_id, week_ending, count(*) as submitted_calls, count(distinct hcp_id) as hcps_reached
    from submitted
    group by territory_id, week_ending

),

hcp_weeks_with_own_trx as (

    select distinct territory_id, hcp_id, week_ending
    from own_rx
    where territory_id is not null and trx > 0

),

hcps_with_own_trx_13wk as (

    select
        hcp_weeks_with_own_trx.territory_id,
        weeks.week_ending,
        count(distinct hcp_weeks_with_own_trx.hcp_id) as hcps_with_own_trx_13wk
    from weeks
    inner join hcp_weeks_with_own_trx
        on hcp_weeks_with_own_trx.week_ending <= weeks.week_ending
        and hcp_weeks_with_own_trx.week_ending > {{ add_days('weeks.week_ending', -91) }}
    group by hcp_weeks_with_own_trx.territory_id, weeks.week_ending

),

reached_with_own_trx_13wk as (

    -- The reach numerator: reached HCPs of the denominator (a rep may also call HCPs without own-brand TRx).
    select
        submitted.territory_id,
        submitted.week_ending,
        count(distinct submitted.hcp_id) as hcps_reached_with_own_trx_13wk
    from submitted
    inner join hcp_weeks_with_own_trx
        on hcp_weeks_with_own_trx.territory_id = submitted.territory_id
        and hcp_weeks_with_own_trx.hcp_id = submitted.hcp_id
        and hcp_weeks_with_own_trx.week_ending <= submitted.week_ending
        and hcp_weeks_with_own_trx.week_ending > {{ add_days('submitted.week_ending', -91) }}
    group by submitted.territory_id, submitted.week_ending

),

territory_weeks as (

    select territories.territory_id, territories.territory_name, territories.district_name,
        territories.region_name, weeks.week_ending
    from territories
    cross join weeks

),

final as (

    select
        cast(territory_weeks.territory_id as varchar) as territory_id,
        cast(territory_weeks.territory_name as varchar) as territory_name,
        cast(territory_weeks.district_name as varchar) as district_name,
        cast(territory_weeks.region_name as varchar) as region_name,
        cast(territory_weeks.week_ending as date) as week_ending,
        cast(coalesce(own_rx_by_territory.own_trx, 0) as bigint) as own_trx,
        cast(coalesce(own_rx_by_territory.own_nbrx, 0) as bigint) as own_nbrx,
        cast(round(cast(coalesce(allocated_sales.net_sales_usd, 0) as numeric(38, 6)), 2) as numeric(18, 2))
            as net_sales_usd,
        cast(coalesce(submitted_calls.submitted_calls, 0) as bigint) as submitted_calls,
        cast(coalesce(submitted_calls.hcps_reached, 0) as bigint) as hcps_reached,
        cast(coalesce(hcps_with_own_trx_13wk.hcps_with_own_trx_13wk, 0) as bigint) as hcps_with_own_trx_13wk,
        cast(case
            when hcps_with_own_trx_13wk.hcps_with_own_trx_13wk > 0
                then {{ safe_divide(
                    'coalesce(reached_with_own_trx_13wk.hcps_reached_with_own_trx_13wk, 0)',
                    'hcps_with_own_trx_13wk.hcps_with_own_trx_13wk') }}
        end as double precision) as reach_pct
    from territory_weeks
    left join own_rx_by_territory
        on own_rx_by_territory.territory_id = territory_weeks.territory_id
        and own_rx_by_territory.week_ending = territory_weeks.week_ending
    left join allocated_sales
        on allocated_sales.territory_id = territory_weeks.territory_id
        and allocated_sales.week_ending = territory_weeks.week_ending
    left join submitted_calls
        on submitted_calls.territory_id = territory_weeks.territory_id
        and submitted_calls.week_ending = territory_weeks.week_ending
    left join hcps_with_own_trx_13wk
        on hcps_with_own_trx_13wk.territory_id = territory_weeks.territory_id
        and hcps_with_own_trx_13wk.week_ending = territory_weeks.week_ending
    left join reached_with_own_trx_13wk
        on reached_with_own_trx_13wk.territory_id = territory_weeks.territory_id
        and reached_with_own_trx_13wk.week_ending = territory_weeks.week_ending

)

select * from final
