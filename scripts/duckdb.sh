#!/usr/bin/env bash
# scripts/duckdb.sh: python3 with DuckDB, to query what Weir archived the way
# an analyst would (read_parquet over a Hive-partitioned folder). DuckDB is
# installed from PyPI once, into $WEIR_CACHE/duckdb-py-<version>, and not
# into the system's Python.
#
# Usage: scripts/duckdb.sh [PYTHON ARGS...]   e.g. scripts/duckdb.sh -c 'import duckdb; ...'
# Exit 3 when there is no python3 (the tests then skip the DuckDB part).
set -euo pipefail

DUCKDB_VERSION=2.0.1
CACHE_ROOT="${WEIR_CACHE:-${HOME:-/root}/.cache/weir}"
TARGET="$CACHE_ROOT/duckdb-py-$DUCKDB_VERSION"

if ! command -v python3 >/dev/null; then
	echo "duckdb.sh: no python3" >&2
	exit 3
fi
if [[ ! -f "$TARGET/.complete" ]]; then
	echo "duckdb.sh: installing duckdb $DUCKDB_VERSION from PyPI into $TARGET (once)" >&2
	rm -rf "$TARGET"
	python3 -m pip install --quiet --disable-pip-version-check --target "$TARGET" "duckdb==$DUCKDB_VERSION" >&2
	touch "$TARGET/.complete"
fi
PYTHONPATH="$TARGET${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"
