-- A territory week after the latest IQVIA week would read as no prescriptions and no reach, when the
-- week is only not delivered yet: the report ends with the prescriptions it reports on.
select territory_weekly.week_ending
from {{ ref('rpt_territory_weekly') }} as territory_weekly
where territory_weekly.week_ending > (select max(week_ending) from {{ ref('fct_rx_weekly') }})
