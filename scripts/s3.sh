#!/usr/bin/env bash
# scripts/s3.sh: a real S3-compatible object store on 127.0.0.1 for Weir's
# archive tests: Versity S3 Gateway (versitygw, Apache 2.0), an S3 server in
# Go over a POSIX directory, built once from the Go module proxy and cached
# like the Kafka jars. It speaks the S3 API the archive sink uses (PutObject,
# multipart uploads and their listing and abort, listing, GetObject) with
# SigV4 authentication.
#
# Usage: scripts/s3.sh COMMAND
#   start          build the server if needed, start it on an EMPTY data
#                  directory (a server already running from the same run dir
#                  is stopped first), wait until it answers, print its
#                  WEIR_S3_* settings.
#   stop           SIGTERM, wait up to 10 s, then SIGKILL. Idempotent.
#   status         exit 0 if the server runs, 3 if not.
#   env            print the WEIR_S3_* settings of the running server.
#   fetch          only build the server into the cache.
#   run CMD [ARG...]
#                  if WEIR_S3_ENDPOINT is unset: start a server, run CMD with
#                  WEIR_S3_ENDPOINT, WEIR_S3_ACCESS_KEY, WEIR_S3_SECRET_KEY and
#                  WEIR_S3_INSECURE exported, and always stop it afterwards
#                  (the exit code of CMD is kept; on failure the server log's
#                  last 30 lines are shown). If WEIR_S3_ENDPOINT is set, CMD
#                  just runs against that store.
#
# Environment:
#   WEIR_CACHE     cache root (default $HOME/.cache/weir); the binary lives in
#                  $WEIR_CACHE/versitygw-<version>/versitygw.
#   WEIR_S3_DIR    run dir: data, pid and log (default <repo>/.cache/s3-run).
#   WEIR_S3_PORT   port to prefer (default 17070; another free port is picked
#                  if it is taken).
#
# Needs: go (the module proxy serves the server's source).
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
GO="${GO:-go}"

CACHE_ROOT="${WEIR_CACHE:-${HOME:-/root}/.cache/weir}"
BIN_DIR="$CACHE_ROOT/versitygw-$VERSITYGW_VERSION"
BIN="$BIN_DIR/versitygw"

RUN_DIR="${WEIR_S3_DIR:-$REPO_ROOT/.cache/s3-run}"
case "$RUN_DIR" in /*) ;; *) RUN_DIR="$PWD/$RUN_DIR" ;; esac
PID_FILE="$RUN_DIR/s3.pid"
ENV_FILE="$RUN_DIR/s3.env"
LOG="$RUN_DIR/s3.log"
DATA="$RUN_DIR/data"
ACCESS_KEY=weir
SECRET_KEY=weir-archive-secret

log() { echo "s3.sh: $*" >&2; }

fetch() {
	if [[ -x "$BIN" ]]; then
		return
	fi
	mkdir -p "$BIN_DIR"
	# One build at a time (make test starts one in the background while it
	# lints): a second fetch waits for the first, then finds the binary.
	exec 9>"$BIN_DIR.lock"
	flock 9
	if [[ -x "$BIN" ]]; then
		return
	fi
	log "building versitygw $VERSITYGW_VERSION from the Go module proxy into $BIN_DIR (once)"
	local tmp
	tmp="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
	GOBIN="$tmp" GOFLAGS=-mod=mod "$GO" install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	mv "$tmp/versitygw" "$BIN"
	rmdir "$tmp"
}

running() {
	[[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
	local p="${WEIR_S3_PORT:-17070}"
	for _ in $(seq 1 50); do
		if port_free "$p"; then
			echo "$p"
			return
		fi
		p=$((p + 1))
	done
	log "no free port from ${WEIR_S3_PORT:-17070} on"
	exit 1
}

stop() {
	if ! running; then
		rm -f "$PID_FILE"
		return
	fi
	local pid
	pid="$(cat "$PID_FILE")"
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$PID_FILE"
}

start() {
	fetch
	stop
	rm -rf "$DATA"
	mkdir -p "$DATA"
	local port
	port="$(pick_port)"
	# setsid: the server outlives this script, in a session of its own.
	setsid "$BIN" --access "$ACCESS_KEY" --secret "$SECRET_KEY" --port "127.0.0.1:$port" --quiet \
		posix "$DATA" >"$LOG" 2>&1 </dev/null &
	echo $! >"$PID_FILE"
	for _ in $(seq 1 300); do
		if ! running; then
			log "versitygw exited at start:"
			tail -n 30 "$LOG" >&2
			exit 1
		fi
		# Any HTTP answer (403 without credentials) means it serves.
		if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
			{
				echo "WEIR_S3_ENDPOINT=127.0.0.1:$port"
				echo "WEIR_S3_ACCESS_KEY=$ACCESS_KEY"
				echo "WEIR_S3_SECRET_KEY=$SECRET_KEY"
				echo "WEIR_S3_INSECURE=true"
			} >"$ENV_FILE"
			cat "$ENV_FILE"
			return
		fi
		sleep 0.1
	done
	log "versitygw did not answer within 30 s"
	tail -n 30 "$LOG" >&2
	stop
	exit 1
}

cmd="${1:-}"
shift || true
case "$cmd" in
fetch) fetch ;;
start) start ;;
stop) stop ;;
status)
	if running; then
		echo "versitygw runs (pid $(cat "$PID_FILE"))"
	else
		echo "versitygw does not run"
		exit 3
	fi
	;;
env) cat "$ENV_FILE" ;;
run)
	if [[ -n "${WEIR_S3_ENDPOINT:-}" ]]; then
		exec "$@"
	fi
	start >/dev/null
	set -a
	# shellcheck disable=SC1090
	source "$ENV_FILE"
	set +a
	export WEIR_S3_SH="$SCRIPT_PATH"
	code=0
	"$@" || code=$?
	if [[ $code -ne 0 ]]; then
		log "tests failed ($code); the S3 server's log ends with:"
		tail -n 30 "$LOG" >&2 || true
	fi
	stop
	exit "$code"
	;;
*)
	sed -n '2,35p' "$SCRIPT_PATH" >&2
	exit 2
	;;
esac
