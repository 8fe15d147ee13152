"""Pullers: plain readers of source systems (a database, an API, a stream) that end at landing files.

No Dagster and no settings here: each puller takes plain parameters (a lake, connection details,
a day) and writes `landing/<feed>/` files whole, so from there a pulled feed is a file feed.
"""
