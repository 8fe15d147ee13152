#!/usr/bin/env bash
# What `make test` needs beyond the virtualenv: PostgreSQL 15's server binaries and a `postgres` user (the
# tests start throwaway clusters as that user). Installed here when this machine lets us (root with apt);
# otherwise one line says what to install, and `make test` stops before running anything.
set -euo pipefail
PG_BIN="${FE_PG_BIN:-/usr/lib/postgresql/15/bin}"

have() { [ -x "$PG_BIN/initdb" ] && id postgres >/dev/null 2>&1; }

if have; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "make test: installing PostgreSQL 15 (apt-get install postgresql-15) for the tests' throwaway clusters" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi
if have; then exit 0; fi
echo "make test: needs PostgreSQL 15 server binaries in $PG_BIN and a 'postgres' user: install the Debian package postgresql-15 (or set FE_PG_BIN)" >&2
exit 1
