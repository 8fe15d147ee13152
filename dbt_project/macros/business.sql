{#- The durable HCP identity: NPI when known, else the IQVIA prescriber, else the CRM account. -#}
{% macro hcp_id(npi, prescriber_id='null', account_id='null') -%}
    case
        when {{ npi }} is not null then 'NPI:' || {{ npi }}
        when {{ prescriber_id }} is not null then 'IQVIA:' || {{ prescriber_id }}
        else 'CRM:' || {{ account_id }}
    end
{%- endmacro %}

{#-
  The dim_hcp version in force on a date: valid_from <= date < valid_to. The first version of an
  HCP also covers dates before it was first seen, so every fact row finds a version.
-#}
{% macro hcp_version_at(hcp_alias, date_expr) -%}
    ({{ hcp_alias }}.version_number = 1 or {{ date_expr }} >= {{ hcp_alias }}.valid_from)
    and {{ date_expr }} < {{ hcp_alias }}.valid_to
{%- endmacro %}

{#- Redshift distribution and sort keys; other adapters get no such config at all. -#}
{% macro redshift_layout(dist=none, sort=none) -%}
    {%- set layout = {} -%}
    {%- if target.type == 'redshift' -%}
        {%- if dist -%}{%- do layout.update({'dist': dist}) -%}{%- endif -%}
        {%- if sort -%}{%- do layout.update({'sort': sort}) -%}{%- endif -%}
    {%- endif -%}
    {{ return(layout) }}
{%- endmacro %}
