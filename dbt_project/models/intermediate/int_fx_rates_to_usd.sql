-- One row per rate date and currency: the factor that turns an amount in that currency into USD
-- (rate[USD] / rate[currency], the base currency EUR having rate 1). Latest delivery wins.
-- Each row is valid from its rate date up to (excluding) the currency's next rate date; valid_to is null for the
-- latest rate (open-ended). Only dates with both the currency's and the USD rate count, so an amount dated d is
-- converted by the one row with valid_from <= d < valid_to: the latest usable rate on or before d.
with rates as (

    select * from {{ ref('stg_fx__rates') }}

),

ranked as (

    select
        rates.*,
        row_number() over (
            partition by rate_date, quote_currency
            order by delivery_date desc, source_row desc
        ) as delivery_rank
    from rates
    where rate > 0

),

quoted as (

    select rate_date, quote_currency as currency, rate as rate_per_base
    from ranked
    where delivery_rank = 1

),

base as (

    -- The base currency (EUR) quotes 1 against itself on every rate date.
    select distinct rate_date, base_currency as currency, cast(1.0 as double precision) as rate_per_base
    from ranked
    where delivery_rank = 1

),

all_rates as (

    select rate_date, currency, rate_per_base from quoted
    union all
    select rate_date, currency, rate_per_base from base
    where not exists (
        select 1 from quoted
        where quoted.rate_date = base.rate_date and quoted.currency = base.currency
    )

),

usd as (

    select rate_date, rate_per_base as usd_per_base
    from all_rates
    where currency = 'USD'

),

with_usd as (

    select
        all_rates.rate_date,
        all_rates.currency,
        all_rates.rate_per_base,
        usd.usd_per_base,
        usd.usd_per_base / all_rates.rate_per_base as rate_to_usd
    from all_rates
    inner join usd on usd.rate_date = all_rates.rate_date

),

final as (

    select
        rate_date,
        currency,
        rate_per_base,
        usd_per_base,
        rate_to_usd,
        rate_date as valid_from,
        lead(rate_date) over (partition by currency order by rate_date) as valid_to
    from with_usd

)

select * from final
