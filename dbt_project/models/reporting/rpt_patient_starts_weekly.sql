-- Brand x territory x week: new patients (patient tokens whose first DISPENSED fill of the brand falls in the
-- week; a reversed fill never happened), DISPENSED refills, reversed fills and days of therapy dispensed. The
-- territory is the prescriber's (the dim_hcp version of the dispense), null when unknown. No patient or HCP is
-- listed.
with dispenses as (

    select * from {{ ref('fct_dispense') }}

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

brands as (

    select brand_code, max(brand_name) as brand_name
    from products
    group by brand_code

),

fills as (

    select
        dispenses.dispense_id,
        dispenses.patient_token,
        products.brand_code,
        hcps.territory_id,
        dispenses.dispense_date,
        {{ week_ending('dispenses.dispense_date') }} as week_ending,
        dispenses.fill_type,
        dispenses.status,
        dispenses.days_supply
    from dispenses
    inner join products on products.product_key = dispenses.product_key
    left join hcps on hcps.hcp_key = dispenses.hcp_key

),

numbered as (

    -- The patient's DISPENSED fills of the brand in date order; reversed fills come after all of them.
    select
        fills.*,
        row_number() over (
            partition by patient_token, brand_code
            order by case when status = 'DISPENSED' then 0 else 1 end, dispense_date, dispense_id
        ) as dispensed_fill_number
    from fills

),

weekly as (

    select
        brand_code,
        territory_id,
        week_ending,
        count(distinct case when status = 'DISPENSED' and dispensed_fill_number = 1 then patient_token end)
            as new_patients,
        sum(case when status = 'DISPENSED' and fill_type = 'REFILL' then 1 else 0 end) as refills,
        sum(case when status = 'REVERSED' then 1 else 0 end) as reversed_fills,
        sum(case when status = 'DISPENSED' then days_supply else 0 end) as days_supply_dispensed
    from numbered
    group by brand_code, territory_id, week_ending

),

final as (

    select
        cast(weekly.brand_code as varchar) as brand_code,
        cast(brands.brand_name as varchar) as brand_name,
        cast(weekly.territory_id as varchar) as territory_id,
        cast(territories.territory_name as varchar) as territory_name,
        cast(territories.region_name as varchar) as region_name,
        cast(weekly.week_ending as date) as week_ending,
        cast(weekly.new_patients as bigint) as new_patients,
        cast(weekly.refills as bigint) as refills,
        cast(weekly.reversed_fills as bigint) as reversed_fills,
        cast(coalesce(weekly.days_supply_dispensed, 0) as bigint) as days_supply_dispensed
    from weekly
    inner join brands on brands.brand_code = weekly.brand_code
    left join territories on territories.territory_id = weekly.territory_id

)

select * from final
