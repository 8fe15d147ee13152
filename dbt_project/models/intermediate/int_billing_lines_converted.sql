-- Billing lines of every delivery with their USD value: value / rate[currency] * rate[USD], using the
-- latest rate on or before the billing date; null when there is no usable rate (reported by a test).
with lines as (

    select * from {{ ref('stg_sap__billing_lines') }}

),

rates as (

    select * from {{ ref('int_fx_rates_to_usd') }}

),

rate_candidates as (

    select
        lines.billing_document,
        lines.billing_item,
        lines.delivery_date,
        lines.source_row,
        rates.rate_date,
        rates.rate_per_base,
        rates.usd_per_base,
        row_number() over (
            partition by lines.billing_document, lines.billing_item, lines.delivery_date, lines.source_row
            order by rates.rate_date desc
        ) as rate_rank
    from lines
    inner join rates
        on rates.currency = lines.currency
        and rates.rate_date <= lines.billing_date

),

final as (

    select
        lines.billing_document,
        lines.billing_item,
        lines.billing_type,
        lines.billing_date,
        lines.sales_org,
        lines.sold_to,
        lines.ship_to,
        lines.material,
        lines.quantity,
        lines.sales_unit,
        lines.net_value,
        lines.currency,
        rate_candidates.rate_date as fx_rate_date,
        rate_candidates.usd_per_base / rate_candidates.rate_per_base as fx_rate_to_usd,
        cast(round(cast(
            cast(lines.net_value as double precision) / rate_candidates.rate_per_base * rate_candidates.usd_per_base
            as numeric(38, 6)), 2) as numeric(18, 2)) as net_value_usd,
        lines.delivery_date,
        lines.source_file,
        lines.source_row
    from lines
    left join rate_candidates
        on rate_candidates.billing_document = lines.billing_document
        and rate_candidates.billing_item = lines.billing_item
        and rate_candidates.delivery_date = lines.delivery_date
        and rate_candidates.source_row = lines.source_row
        and rate_candidates.rate_rank = 1

)

select * from final
