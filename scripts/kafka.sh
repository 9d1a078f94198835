#!/usr/bin/env bash
# scripts/kafka.sh: a real, single-node Apache Kafka 4.4 broker (KRaft,
# combined broker+controller) on 127.0.0.1 for Weir's tests and benchmarks.
#
# Usage: scripts/kafka.sh COMMAND
#   start          fetch the jars if needed, format a FRESH data dir, start the
#                  broker, wait until it answers Kafka requests, print
#                  KAFKA_BROKERS=127.0.0.1:PORT. A broker already running from
#                  the same run dir is stopped and wiped first.
#   stop [--kill]  SIGTERM (or SIGKILL with --kill), wait up to 30s, then
#                  SIGKILL. Idempotent.
#   restart [--kill]
#                  stop (clean, or SIGKILL with --kill to simulate a crash),
#                  then start again on the SAME ports and the SAME data dir
#                  (no reformat): topics, offsets and transactions survive.
#   status         print whether the broker runs; exit 0 if it does, 3 if not.
#   env            print KAFKA_BROKERS=127.0.0.1:PORT of the running broker.
#   logs [N]       print the last N (default 50) lines of the broker log.
#   fetch          only download the jars into the cache.
#   run CMD [ARG...]
#                  if KAFKA_BROKERS is unset: start a broker, run CMD with
#                  KAFKA_BROKERS, WEIR_KAFKA_DIR and WEIR_KAFKA_SH exported, and
#                  always stop the broker afterwards (exit code of CMD is
#                  kept; on failure the broker log's last 50 lines are shown).
#                  If KAFKA_BROKERS is already set, CMD just runs against it.
#
# Environment:
#   WEIR_CACHE       jar cache root (default $HOME/.cache/weir); jars live in
#                    $WEIR_CACHE/kafka-4.4.0/libs and are reused across clones.
#   WEIR_KAFKA_DIR   run dir: config, data and logs (default <repo>/.cache/kafka-run).
#   WEIR_KAFKA_PORT  broker port to prefer (default 19092; another free port
#                    is picked if it is taken).
#   WEIR_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90).
#   KAFKA_HEAP_OPTS  JVM heap flags (default -Xms256m -Xmx768m).
#   WEIR_KAFKA_FORMAT_ARGS  extra StorageTool format arguments at start, e.g.
#                    "--feature transaction.version=1" for Kafka's first
#                    transaction protocol instead of KIP-890's (version 2).
#   WEIR_KAFKA_SECURE_DIR  if set at start: a directory holding server.pem
#                    (the broker's PEM private key, unencrypted PKCS#8, and
#                    its certificate chain) and optionally plain-users
#                    (user=password lines for SASL PLAIN). The broker then
#                    also listens with SASL_SSL (SCRAM-SHA-256/512, PLAIN,
#                    OAUTHBEARER with Kafka's unsecured JWT validator) on a
#                    port of its own, printed as KAFKA_SASL_SSL_BROKERS,
#                    and enforces ACLs with the standard authorizer there.
#                    The PLAINTEXT listener's clients (ANONYMOUS) are super
#                    users, so tests on it see no ACLs; SCRAM users are
#                    created through the admin API.
#
# Needs: java 17+ and mvn (Debian: apt-get install openjdk-17-jre-headless maven).
set -euo pipefail

KAFKA_VERSION=4.4.0
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$SCRIPT_DIR/kafka/pom.xml"

CACHE_ROOT="${WEIR_CACHE:-${HOME:-/root}/.cache/weir}"
KAFKA_CACHE="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_CACHE/libs"
FETCH_MARKER="$KAFKA_CACHE/.fetch-complete"

RUN_DIR="${WEIR_KAFKA_DIR:-$REPO_ROOT/.cache/kafka-run}"
case "$RUN_DIR" in /*) ;; *) RUN_DIR="$PWD/$RUN_DIR" ;; esac
RUN_MARKER="$RUN_DIR/.weir-kafka-run"
PID_FILE="$RUN_DIR/kafka.pid"
ENV_FILE="$RUN_DIR/broker.env"
CONFIG="$RUN_DIR/server.properties"
LOG4J_CONFIG="$RUN_DIR/log4j2.properties"
LOG_DIR="$RUN_DIR/logs"
SERVER_LOG="$LOG_DIR/server.log"
STDOUT_LOG="$LOG_DIR/stdout.log"
DATA_DIR="$RUN_DIR/data"

START_TIMEOUT="${WEIR_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

java_major() {
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  case "$v" in
    1.*) v="${v#1.}" ;;
  esac
  printf '%s\n' "${v%%[.+-]*}"
}

missing_tools_help() {
  cat >&2 <<EOF
kafka.sh: $1

The real-Kafka tests run a local Apache Kafka $KAFKA_VERSION broker, which needs
Java 17+ and Maven (to fetch the broker jars from Maven Central). Either:
  * install them, e.g. on Debian/Ubuntu:
        apt-get install -y openjdk-17-jre-headless maven
  * or point the tests at an existing broker instead of starting one:
        export KAFKA_BROKERS=host:port
EOF
  exit 1
}

check_java() {
  command -v java >/dev/null 2>&1 || missing_tools_help "java not found on PATH"
  local major
  major="$(java_major)"
  [[ "$major" =~ ^[0-9]+$ ]] || missing_tools_help "cannot tell the version of $(command -v java)"
  ((major >= 17)) || missing_tools_help "java $major found, Kafka $KAFKA_VERSION needs 17 or newer"
}

# ------------------------------------------------------------------------ fetch

pom_sum() { cksum <"$POM" | cut -d' ' -f1; }

fetched() {
  [[ -f "$FETCH_MARKER" && -d "$LIBS" ]] && [[ "$(cat "$FETCH_MARKER")" == "$(pom_sum)" ]]
}

fetch() {
  fetched && return 0
  command -v mvn >/dev/null 2>&1 || missing_tools_help "mvn (Maven) not found on PATH; it fetches the Kafka jars (once, cached in $KAFKA_CACHE)"
  mkdir -p "$KAFKA_CACHE"
  # Serialise concurrent fetches (two clones starting at once).
  exec 8>"$KAFKA_CACHE/.lock"
  if command -v flock >/dev/null 2>&1; then flock 8; fi
  if fetched; then exec 8>&-; return 0; fi
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (one-time)..."
  local tmp="$KAFKA_CACHE/libs.tmp.$$" t0=$SECONDS out
  rm -rf "$tmp"
  out="$(mktemp)"
  # Build dir under the temp dir so nothing is written into the source tree.
  if ! mvn -B -q -f "$POM" package \
      -Dweir.kafka.libs="$tmp" \
      -Dproject.build.directory="$tmp/.target" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    rm -rf "$tmp" "$out"
    die "mvn failed to fetch the Kafka jars (see above)"
  fi
  rm -f "$out"
  rm -rf "$tmp/.target"
  compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null || die "fetch produced no kafka_2.13-$KAFKA_VERSION.jar in $tmp"
  rm -rf "$LIBS" "$FETCH_MARKER"
  mv "$tmp" "$LIBS"
  pom_sum >"$FETCH_MARKER"
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - t0))s"
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

# Our broker: alive, and its command line is kafka.Kafka with our config.
is_our_pid() {
  local pid="$1"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 0 # no procfs: trust the pid file
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$CONFIG"
}

running() { is_our_pid "$(read_pid)"; }

broker_addr() { sed -n 's/^KAFKA_BROKERS=//p' "$ENV_FILE" 2>/dev/null | head -n1; }

# --------------------------------------------------------------------- probing

# True if something accepts TCP connections on 127.0.0.1:$1.
port_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True if nothing listens on local TCP port $1. Sockets in TIME_WAIT etc. do
# not matter: Kafka binds with SO_REUSEADDR.
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
  if [[ -n "$want" && " $exclude " != *" $want "* ]] && port_free "$want"; then
    echo "$want"
    return
  fi
  for ((i = 0; i < 200; i++)); do
    # Below the usual ephemeral range (32768+), so client sockets don't collide.
    p=$((20000 + RANDOM % 12000))
    [[ " $exclude " == *" $p "* ]] && continue
    if port_unused "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

# Reads exactly $1 bytes from fd 3 and prints them as decimal numbers.
read_bytes() { timeout 5 head -c "$1" <&3 | od -An -v -tu1; }

# Sends a Metadata v4 request (no topics) to 127.0.0.1:$1 and succeeds if the
# broker answers with at least one live broker, i.e. it really serves Kafka
# requests and has registered (and been unfenced) in the KRaft metadata.
metadata_ok() {
  local port="$1" resp n
  (
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    # size=19 | api_key=3 (Metadata) | version=4 | correlation_id=7 |
    # client_id="weir" | topics=[] (empty, not null) | allow_auto_create=false
    printf '\x00\x00\x00\x13\x00\x03\x00\x04\x00\x00\x00\x07\x00\x04weir\x00\x00\x00\x00\x00' >&3
    # size(4) correlation_id(4) throttle_time_ms(4) brokers.length(4)
    read -r -a resp < <(read_bytes 16 | tr '\n' ' ')
    ((${#resp[@]} == 16)) || exit 1
    ((resp[4] == 0 && resp[5] == 0 && resp[6] == 0 && resp[7] == 7)) || exit 1
    n=$(((resp[12] << 24) | (resp[13] << 16) | (resp[14] << 8) | resp[15]))
    ((n >= 1 && n < 1000))
  ) 2>/dev/null
}

# ------------------------------------------------------------------ generation

write_log4j_config() {
  cat >"$LOG4J_CONFIG" <<EOF
# Generated by scripts/kafka.sh: INFO and above to logs/server.log.
status = warn
name = weir-kafka

appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $SERVER_LOG
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d{ISO8601}] %p %m (%c)%n

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE

# Quieten the chattiest loggers.
logger.requestlog.name = kafka.request.logger
logger.requestlog.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
# The full config dumps (every client/server config, ~300 lines each) would
# bury everything else; server.properties in the run dir has the settings.
logger.configdump.name = org.apache.kafka.common.config.AbstractConfig
logger.configdump.level = WARN
EOF
}

write_server_config() {
  local bport="$1" cport="$2" sport="${3:-}"
  local listeners="PLAINTEXT://127.0.0.1:$bport,CONTROLLER://127.0.0.1:$cport"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n "$sport" ]]; then
    listeners="$listeners,SASL_SSL://127.0.0.1:$sport"
    protocols="$protocols,SASL_SSL:SASL_SSL"
  fi
  cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh: single-node KRaft test broker. Do not edit;
# 'scripts/kafka.sh start' regenerates it (restart reuses it as is).
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$DATA_DIR

# One node: every replication factor / ISR is 1.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Topics are created explicitly by the tests.
auto.create.topics.enable=false
num.partitions=4
delete.topic.enable=true

# Small internal topics: they are created on first use, and 50 partitions
# each (the default) costs seconds on a 2-core machine.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=8

# Fast groups: no initial rebalance delay, short sessions allowed.
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=6000
group.consumer.min.heartbeat.interval.ms=500
group.consumer.heartbeat.interval.ms=1000

# Fast transaction housekeeping (timed-out transactions aborted within ~1s).
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000

# After a crash (restart --kill) the controller refuses the new broker
# incarnation until the old registration's session expires (default 9s).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000

# Modest resource use on small CI machines.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
  [[ -z "$sport" ]] || write_secure_config
}

# The SASL_SSL listener's settings (WEIR_KAFKA_SECURE_DIR).
write_secure_config() {
  local dir="$WEIR_KAFKA_SECURE_DIR" plain_users=""
  [[ -f "$dir/server.pem" ]] || die "WEIR_KAFKA_SECURE_DIR=$dir holds no server.pem"
  if [[ -f "$dir/plain-users" ]]; then
    local user pass
    while IFS='=' read -r user pass; do
      [[ -n "$user" ]] && plain_users+=" user_$user=\"$pass\""
    done <"$dir/plain-users"
  fi
  cat >>"$CONFIG" <<EOF

# SASL_SSL listener (WEIR_KAFKA_SECURE_DIR): TLS with a PEM key store,
# SCRAM, PLAIN and OAUTHBEARER, and ACLs enforced by the standard
# authorizer. The PLAINTEXT and CONTROLLER listeners' ANONYMOUS principal
# is a super user.
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$dir/server.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";
listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
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
  log "stopping broker (pid $pid, SIG$sig)..."
  kill -s "$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "broker did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -s KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
  log "broker stopped"
}

# Launches the JVM from the existing run dir and waits for readiness.
launch() {
  local addr port t0=$SECONDS
  addr="$(broker_addr)"
  port="${addr##*:}"
  [[ -n "$port" ]] || die "no broker address in $ENV_FILE"
  local cport
  cport="$(sed -n 's/^controller.quorum.bootstrap.servers=.*:\([0-9]*\)$/\1/p' "$CONFIG")"
  # A just-killed JVM may hold its sockets for a moment while its threads exit.
  wait_port_free "$port" || die "port $port (broker) is in use by another process"
  [[ -z "$cport" ]] || wait_port_free "$cport" || die "port $cport (controller) is in use by another process"

  mkdir -p "$LOG_DIR"
  local heap="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  # A new session, so that ^C in the shell that ran 'start' does not kill it.
  local setsid=()
  command -v setsid >/dev/null 2>&1 && setsid=(setsid)
  # shellcheck disable=SC2086,SC2016 # $heap splits on purpose; $$ is bash -c's
  nohup "${setsid[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="file:$LOG4J_CONFIG" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$CONFIG" \
    >>"$STDOUT_LOG" 2>&1 </dev/null &
  local deadline=$((SECONDS + START_TIMEOUT)) pid=""
  while ((SECONDS < deadline)); do
    pid="$(read_pid)"
    if [[ -n "$pid" ]] && ! alive "$pid"; then
      rm -f "$PID_FILE"
      if [[ "${LAUNCH_RETRY_ON_BIND:-0}" == 1 ]] &&
        grep -qs "Address already in use" "$STDOUT_LOG" "$SERVER_LOG"; then
        return 2 # lost a race for the port: the caller picks new ports
      fi
      log "broker exited during startup; last lines of its logs:"
      tail -n 30 "$STDOUT_LOG" >&2 || true
      tail -n 30 "$SERVER_LOG" >&2 2>/dev/null || true
      exit 1
    fi
    if [[ -n "$pid" ]] && port_listening "$port" && metadata_ok "$port"; then
      log "broker ready at $addr (pid $pid) in $((SECONDS - t0))s"
      cat "$ENV_FILE"
      return 0
    fi
    sleep 0.5
  done
  log "broker not ready after ${START_TIMEOUT}s; last lines of its log:"
  tail -n 50 "$SERVER_LOG" >&2 2>/dev/null || tail -n 50 "$STDOUT_LOG" >&2 || true
  cmd_stop --kill || true
  exit 1
}

cmd_start() {
  check_java
  fetch
  cmd_stop

  local attempt rc
  for attempt in 1 2 3; do
    # Retries avoid the preferred ports, which may be the contended ones.
    if ((attempt == 1)); then
      local want="${WEIR_KAFKA_PORT:-19092}"
      fresh_run_dir "$want" "$((want + 1))"
    else
      fresh_run_dir "" ""
    fi
    rc=0
    LAUNCH_RETRY_ON_BIND=$((attempt < 3)) launch || rc=$?
    ((rc == 2)) || return "$rc"
    log "a broker port was taken meanwhile; retrying with other ports"
  done
}

# Wipes the run dir, picks ports (preferring $1 for the broker and $2 for the
# controller if free), writes the config and formats storage.
fresh_run_dir() {
  local want_bport="$1" want_cport="$2"
  # Wipe the run dir, but only if it is ours (or empty / absent).
  if [[ -e "$RUN_DIR" ]]; then
    if [[ -f "$RUN_MARKER" ]] || [[ -z "$(ls -A "$RUN_DIR")" ]]; then
      rm -rf "$RUN_DIR"
    else
      die "$RUN_DIR exists and was not made by kafka.sh; refusing to wipe it (set WEIR_KAFKA_DIR)"
    fi
  fi
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$DATA_DIR"
  : >"$RUN_MARKER"

  local bport cport sport="" cluster_id
  bport="$(pick_port "$want_bport")"
  cport="$(pick_port "$want_cport" "$bport")"
  [[ -z "${WEIR_KAFKA_SECURE_DIR:-}" ]] || sport="$(pick_port "" "$bport $cport")"
  write_log4j_config
  write_server_config "$bport" "$cport" "$sport"
  echo "KAFKA_BROKERS=127.0.0.1:$bport" >"$ENV_FILE"
  [[ -z "$sport" ]] || echo "KAFKA_SASL_SSL_BROKERS=127.0.0.1:$sport" >>"$ENV_FILE"

  # Short-lived tool JVMs: C1 only starts faster.
  local jopts=(-Xmx256m -XX:TieredStopAtLevel=1 -cp "$LIBS/*")
  cluster_id="$(java "${jopts[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/format.log" | tail -n1)"
  [[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid failed (got '$cluster_id'; see $LOG_DIR/format.log)"
  # Kafka 4.x KRaft: --standalone formats a single-node dynamic quorum
  # (controller.quorum.bootstrap.servers, no controller.quorum.voters).
  # shellcheck disable=SC2086 # WEIR_KAFKA_FORMAT_ARGS is a list of words
  java "${jopts[@]}" kafka.tools.StorageTool format --standalone \
    --cluster-id "$cluster_id" --config "$CONFIG" ${WEIR_KAFKA_FORMAT_ARGS:-} >>"$LOG_DIR/format.log" 2>&1 ||
    { cat "$LOG_DIR/format.log" >&2; die "StorageTool format failed"; }
  log "formatted $DATA_DIR (cluster id $cluster_id); starting broker on 127.0.0.1:$bport (controller :$cport)"
}

cmd_restart() {
  [[ -f "$CONFIG" && -f "$ENV_FILE" && -d "$DATA_DIR" ]] ||
    die "no broker run dir at $RUN_DIR to restart; use 'start'"
  check_java
  fetch
  cmd_stop "${1:-}"
  log "restarting broker on the existing data dir"
  launch
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
  running || die "no broker running from $RUN_DIR (run 'scripts/kafka.sh start')"
  cat "$ENV_FILE"
}

cmd_logs() {
  tail -n "${1:-50}" "$SERVER_LOG" 2>/dev/null || die "no broker log at $SERVER_LOG"
}

# shellcheck disable=SC2317 # the trap handlers are reached indirectly
cmd_run() {
  [[ $# -gt 0 ]] || die "usage: kafka.sh run CMD [ARG...]"
  if [[ -n "${KAFKA_BROKERS:-}" ]]; then
    log "using existing broker KAFKA_BROKERS=$KAFKA_BROKERS"
    exec "$@"
  fi
  local started=0 rc=0 child=""
  on_exit() {
    rc=$?
    trap - EXIT INT TERM
    if ((started)); then
      if ((rc != 0)) && [[ -f "$SERVER_LOG" ]]; then
        echo "----- last 50 lines of the Kafka broker log ($SERVER_LOG) -----" >&2
        tail -n 50 "$SERVER_LOG" >&2 || true
        echo "----- end of broker log -----" >&2
      fi
      cmd_stop || true
    fi
    exit "$rc"
  }
  # On ^C or SIGTERM: stop the command, then (EXIT trap) the broker.
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
  local line lines
  lines="$(cmd_start)"
  while IFS= read -r line; do
    [[ -n "$line" ]] && export "${line?}"
  done <<<"$lines"
  line="${lines%%$'\n'*}"
  export WEIR_KAFKA_DIR="$RUN_DIR" WEIR_KAFKA_SH="$SCRIPT_PATH"
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
    restart) cmd_restart "${1:-}" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    logs) cmd_logs "${1:-}" ;;
    fetch) fetch ;;
    run) cmd_run "$@" ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *)
      echo "usage: $0 {start|stop [--kill]|restart [--kill]|status|env|logs [N]|fetch|run CMD...}" >&2
      exit 2
      ;;
  esac
}

main "$@"
