"""SQL over the lake with DuckDB, under the table names Athena knows from the Glue catalog.

Each feed is a table of its committed validated partitions (read through their manifests, so only the
current version of each), with the partition's date as `partition`; `deliveries` is the delivery log,
and `quarantine_<feed>` the quarantined rows. The tables stream from the lake (a folder or S3) as Arrow
datasets; DuckDB itself gets no file access, so a query reads these tables and nothing else.
"""

from __future__ import annotations

from fe_platform.lib.feeds import FEEDS
from fe_platform.lib.lake import Lake
from fe_platform.lib.zones import committed_partitions, current_version


def _dataset(lake: Lake, keys: list[str], schema):
    import pyarrow.dataset as ds

    return ds.dataset([lake.path(k) for k in keys], schema=schema, filesystem=lake.filesystem, format="parquet")


def lake_connection(lake: Lake):
    """An in-memory DuckDB connection with every feed, its quarantine and the delivery log as views."""
    import duckdb

    from fe_platform.lib.delivery_log import delivery_log_schema
    from fe_platform.lib.validation import quarantine_schema
    from fe_platform.lib.warehouse import quote_ident

    con = duckdb.connect(":memory:")
    for feed in FEEDS.values():
        versions = [v for p in committed_partitions(lake, feed.name) if (v := current_version(lake, feed.name, p))]
        for zone, name, schema in (("validated", feed.name, feed.validated_schema()),
                                   ("quarantine", f"quarantine_{feed.name}", quarantine_schema(feed))):
            source = f"_{name}"
            con.register(source, _dataset(lake, [k for v in versions for k in v.keys(zone)], schema))
            con.execute(f"create view {quote_ident(name)} as select *, {quote_ident('_data_date')} as "
                        f"{quote_ident('partition')} from {quote_ident(source)}")
    log = [o.key for o in lake.list("deliveries/") if o.key.endswith(".parquet")]
    con.register("deliveries", _dataset(lake, log, delivery_log_schema()))
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def query_lake(lake: Lake, sql: str) -> tuple[list[str], list[tuple]]:
    """The columns and rows `sql` answers over the lake."""
    con = lake_connection(lake)
    try:
        cursor = con.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    finally:
        con.close()
