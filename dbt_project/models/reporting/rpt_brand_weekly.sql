-- Brand x week: TRx, NRx, NBRx, the market's TRx (every brand of the brand's market), TRx share,
-- rolling 4-week TRx (null until 4 weeks of history) and its growth vs the 4 weeks before (null
-- until 8 weeks of history, or when the earlier 4 weeks had no TRx).
with rx as (

    select * from {{ ref('fct_rx_weekly') }}

),

products as (

    select * from {{ ref('dim_product') }}

),

dates as (

    select * from {{ ref('dim_date') }}

),

brands as (

    select
        brand_code,
        max(brand_name) as brand_name,
        max(market) as market,
        max(case when is_own_brand then 1 else 0 end) = 1 as is_own_brand
    from products
    group by brand_code

),

weeks as (

    select distinct dates.week_ending
    from dates
    where dates.week_ending between (select min(week_ending) from rx) and (select max(week_ending) from rx)

),

rx_by_brand as (

    select
        products.brand_code,
        rx.week_ending,
        sum(rx.trx) as trx,
        sum(rx.nrx) as nrx,
        sum(rx.nbrx) as nbrx
    from rx
    inner join products on products.product_key = rx.product_key
    group by products.brand_code, rx.week_ending

),

brand_weeks as (

    select
        brands.brand_code,
        brands.brand_name,
        brands.market,
        brands.is_own_brand,
        weeks.week_ending,
        coalesce(rx_by_brand.trx, 0) as trx,
        coalesce(rx_by_brand.nrx, 0) as nrx,
        coalesce(rx_by_brand.nbrx, 0) as nbrx
    from brands
    cross join weeks
    left join rx_by_brand
        on rx_by_brand.brand_code = brands.brand_code
        and rx_by_brand.week_ending = weeks.week_ending

),

windowed as (

    select
        brand_weeks.*,
        sum(trx) over (partition by market, week_ending) as market_trx,
        sum(trx) over (
            partition by brand_code order by week_ending rows between 3 preceding and current row
        ) as trx_4wk_sum,
        sum(trx) over (
            partition by brand_code order by week_ending rows between 7 preceding and 4 preceding
        ) as trx_prior_4wk_sum,
        row_number() over (partition by brand_code order by week_ending) as week_number
    from brand_weeks

),

final as (

    select
        cast(brand_code as varchar) as brand_code,
        cast(brand_name as varchar) as brand_name,
        cast(market as varchar) as market,
        cast(is_own_brand as boolean) as is_own_brand,
        cast(week_ending as date) as week_ending,
        cast(trx as bigint) as trx,
        cast(nrx as bigint) as nrx,
        cast(nbrx as bigint) as nbrx,
        cast(market_trx as bigint) as market_trx,
        cast({{ safe_divide('trx', 'market_trx') }} as double precision) as trx_share,
        cast(case when week_number >= 4 then trx_4wk_sum end as bigint) as trx_4wk,
        cast(case
            when week_number >= 8 then {{ safe_divide('trx_4wk_sum - trx_prior_4wk_sum', 'trx_prior_4wk_sum') }}
        end as double precision) as trx_growth_4wk
    from windowed

)

select * from final
