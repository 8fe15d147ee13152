{#-
  Warehouse access, applied on every run (on-run-end) so a rebuild keeps it:
    analyst        reads reporting and marts
    field_ops      reads reporting only
    data_engineer  reads every schema (lake, staging, intermediate, marts, reporting)
  No role but data_engineer reads staging. DuckDB is a single-user file: nothing to grant.
-#}
{% macro warehouse_access() -%}
    {{ return({
        'analyst': ['reporting', 'marts'],
        'field_ops': ['reporting'],
        'data_engineer': ['lake', 'staging', 'intermediate', 'marts', 'reporting'],
    }) }}
{%- endmacro %}

{% macro apply_warehouse_grants() -%}
    {%- if execute -%}
        {{ return(adapter.dispatch('apply_warehouse_grants', 'fe_platform')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__apply_warehouse_grants() -%}
    {%- do log("apply_warehouse_grants: no grants for adapter " ~ target.type, info=true) -%}
    {{ return('') }}
{%- endmacro %}

{% macro duckdb__apply_warehouse_grants() -%}
    {%- do log("DuckDB is a single-user file: no roles or grants", info=true) -%}
    {{ return('') }}
{%- endmacro %}

{% macro postgres__apply_warehouse_grants() -%}
    {{ return(fe_platform.grant_statements('postgres', fe_platform.existing_roles(), fe_platform.existing_schemas()) | join(';\n')) }}
{%- endmacro %}

{% macro redshift__apply_warehouse_grants() -%}
    {{ return(fe_platform.grant_statements('redshift', fe_platform.existing_roles(), fe_platform.existing_schemas()) | join(';\n')) }}
{%- endmacro %}

{% macro existing_roles() -%}
    {%- if target.type == 'redshift' -%}
        {%- set sql = "select role_name from svv_roles" -%}
    {%- else -%}
        {%- set sql = "select rolname from pg_catalog.pg_roles" -%}
    {%- endif -%}
    {{ return(run_query(sql).columns[0].values() | list) }}
{%- endmacro %}

{% macro existing_schemas() -%}
    {%- set sql = "select nspname from pg_catalog.pg_namespace" -%}
    {{ return(run_query(sql).columns[0].values() | list) }}
{%- endmacro %}

{#-
  The statements that create the missing roles and grant read access. Pure: the role and schema
  lists come in, so the SQL can be compiled and checked without a server. Identifiers are quoted.
-#}
{% macro grant_statements(dialect, roles_present, schemas_present) -%}
    {%- set role_kw = 'role ' if dialect == 'redshift' else '' -%}
    {%- set statements = [] -%}
    {%- for role, schemas in fe_platform.warehouse_access().items() -%}
        {%- set r = adapter.quote(role) -%}
        {%- if role not in roles_present -%}
            {%- if dialect == 'redshift' -%}
                {%- do statements.append('create role ' ~ r) -%}
            {%- else -%}
                {%- do statements.append('create role ' ~ r ~ ' nologin') -%}
            {%- endif -%}
        {%- endif -%}
        {%- for schema in schemas if schema in schemas_present -%}
            {%- set s = adapter.quote(schema) -%}
            {%- do statements.append('grant usage on schema ' ~ s ~ ' to ' ~ role_kw ~ r) -%}
            {%- do statements.append('grant select on all tables in schema ' ~ s ~ ' to ' ~ role_kw ~ r) -%}
            {%- do statements.append('alter default privileges in schema ' ~ s ~ ' grant select on tables to ' ~ role_kw ~ r) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(statements) }}
{%- endmacro %}
