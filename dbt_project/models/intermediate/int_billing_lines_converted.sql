-- Billing lines of every delivery with their USD value: value / rate[currency] * rate[USD], using the
-- latest rate on or before the billing date; null when there is no usable rate (reported by a test).
-- The rate is found by an equi-join on the currency plus the rate's validity interval (at most one match per
-- line), so a filter on the lines (fct_billing_line's delivery window) reaches the staging scan and the cost
-- follows the lines selected, not lines x rate days.
with lines as (

    select * from {{ ref('stg_sap__billing_lines') }}

),

rates as (

    select * from {{ ref('int_fx_rates_to_usd') }}

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
        rates.rate_date as fx_rate_date,
        rates.usd_per_base / rates.rate_per_base as fx_rate_to_usd,
        cast(round(cast(
            cast(lines.net_value as double precision) / rates.rate_per_base * rates.usd_per_base
            as numeric(38, 6)), 2) as numeric(18, 2)) as net_value_usd,
        lines.delivery_date,
        lines.source_file,
        lines.source_row
    from lines
    left join rates
        on rates.currency = lines.currency
        and lines.billing_date >= rates.valid_from
        and (rates.valid_to is null or lines.billing_date < rates.valid_to)

)

select * from final
