{#-
  Warehouse access, applied on every run (on-run-end) so a rebuild keeps it:
    analyst        reads reporting and marts
    field_ops      reads reporting only
    data_engineer  reads every schema (lake, staging, intermediate, marts, reporting)
  No role but data_engineer reads staging. A model may narrow its readers in its YAML config
  (meta: fe_platform: readers: [analyst, data_engineer]): the other roles of its schema lose it, both when
  it is rebuilt (post-hook, in the model's own transaction) and after every run. DuckDB is a single-user
  file: nothing to grant.
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
    {{ return(fe_platform.grant_statements('postgres', fe_platform.existing_roles(), fe_platform.existing_schemas(),
                                           fe_platform.restricted_tables()) | join(';\n')) }}
{%- endmacro %}

{% macro redshift__apply_warehouse_grants() -%}
    {{ return(fe_platform.grant_statements('redshift', fe_platform.existing_roles(), fe_platform.existing_schemas(),
                                           fe_platform.restricted_tables()) | join(';\n')) }}
{%- endmacro %}

{#- The readers a model narrows itself to (config meta fe_platform.readers), none when it does not. -#}
{% macro model_readers(meta) -%}
    {{ return(((meta or {}).get('fe_platform') or {}).get('readers')) }}
{%- endmacro %}

{#- Models of the project that narrow their readers and exist in the warehouse: {schema, table, readers}. -#}
{% macro restricted_tables() -%}
    {%- set present = run_query("select schemaname || '.' || tablename from pg_catalog.pg_tables").columns[0].values() -%}
    {%- set restricted = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
        {%- set readers = fe_platform.model_readers(node.config.meta) -%}
        {%- if readers is not none and (node.schema ~ '.' ~ node.alias) in present -%}
            {%- do restricted.append({'schema': node.schema, 'table': node.alias, 'readers': readers}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(restricted) }}
{%- endmacro %}

{#- Post-hook of every model: a model that narrows its readers is taken back from the other roles of its schema
    before its rebuild commits (default privileges granted them the new table). -#}
{% macro revoke_unlisted_readers() -%}
    {%- set readers = fe_platform.model_readers(config.get('meta')) -%}
    {%- if not execute or readers is none or target.type not in ('postgres', 'redshift') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set restricted = [{'schema': this.schema, 'table': this.identifier, 'readers': readers}] -%}
    {{ return(fe_platform.revoke_statements(target.type, fe_platform.existing_roles(), restricted) | join(';\n')) }}
{%- endmacro %}

{% macro revoke_statements(dialect, roles_present, restricted) -%}
    {%- set role_kw = 'role ' if dialect == 'redshift' else '' -%}
    {%- set statements = [] -%}
    {%- for table in restricted -%}
        {%- for role, schemas in fe_platform.warehouse_access().items() -%}
            {%- if table.schema in schemas and role not in table.readers and role in roles_present -%}
                {%- do statements.append('revoke select on ' ~ adapter.quote(table.schema) ~ '.' ~ adapter.quote(table.table)
                                         ~ ' from ' ~ role_kw ~ adapter.quote(role)) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(statements) }}
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
  The statements that create the missing roles, grant read access, and take the restricted tables back
  from the roles they do not list. Pure: the role, schema and table lists come in, so the SQL can be
  compiled and checked without a server. Identifiers are quoted.
-#}
{% macro grant_statements(dialect, roles_present, schemas_present, restricted=[]) -%}
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
    {#- Every role exists by now; the whole list runs as one statement batch, so no reader sees the gap. -#}
    {%- do statements.extend(fe_platform.revoke_statements(dialect, fe_platform.warehouse_access().keys() | list, restricted)) -%}
    {{ return(statements) }}
{%- endmacro %}
