#!/usr/bin/env bash
# scripts/promtool.sh ARGS...: runs Prometheus's promtool with ARGS;
# scripts/prometheus.sh (a link to this script) runs the Prometheus server.
# It uses the program on PATH if there is one; otherwise it takes the one in
# Debian's prometheus package, downloaded once (apt-get download, no
# install and no root needed) and unpacked into the cache, like the Kafka
# jars: $WEIR_CACHE (default $HOME/.cache/weir)/prometheus.
set -euo pipefail
prog="$(basename "$0" .sh)"
if command -v "$prog" >/dev/null 2>&1; then
	exec "$prog" "$@"
fi
cache="${WEIR_CACHE:-$HOME/.cache/weir}/prometheus"
tool="$cache/usr/bin/$prog"
if [[ ! -x "$tool" ]]; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	echo "$prog.sh: fetching Debian's prometheus package for $prog into $cache" >&2
	(cd "$tmp" && apt-get download prometheus >/dev/null 2>"$tmp/err") || { cat "$tmp/err" >&2; exit 1; }
	mkdir -p "$cache"
	dpkg -x "$tmp"/prometheus_*.deb "$cache"
fi
exec "$tool" "$@"
