#!/usr/bin/env bash
# Local Apicurio Registry 3.3.3 (Confluent-compatible API, KafkaSQL storage) for FIN. No Docker.
#
#   ops/registry.sh fetch    download the runnable Quarkus distribution once (Maven Central)
#   ops/registry.sh start    start in the background, wait until the ccompat API answers
#   ops/registry.sh stop     clean shutdown (SIGTERM, SIGKILL after 30 s)
#   ops/registry.sh status   exit 0 if the ccompat API answers
#   ops/registry.sh run      run in the foreground (exec)
#
# Environment (defaults in brackets):
#   REGISTRY_PORT [8081]                       HTTP port, bound to 127.0.0.1 only
#   REGISTRY_KAFKA_BOOTSTRAP [127.0.0.1:9092]  Kafka holding the registry journal (KafkaSQL)
#   REGISTRY_KAFKA_TOPIC [kafkasql-journal]    journal topic (snapshots: <topic>-snapshots)
#   REGISTRY_STATE_DIR [<repo>/.state/registry] log, pid, and `url` (the base URL below, written
#                                              at start: FIN's Settings read it when
#                                              FIN_SCHEMA_REGISTRY_URL is unset)
#   REGISTRY_MANAGEMENT_PORT [0 = random free port] Quarkus management interface (health, metrics)
#   REGISTRY_HEAP [256m]                       -Xmx of the JVM
#   REGISTRY_GLOBAL_COMPATIBILITY [BACKWARD]   default compatibility (Confluent's default; Apicurio's is NONE)
#   REGISTRY_START_TIMEOUT [90]                seconds `start` waits for the API
#   REGISTRY_JAVA                              java binary (must be 21+; else found automatically)
#   FIN_CACHE_DIR [<repo>/.cache]              the distribution goes to $FIN_CACHE_DIR/apicurio-3.3.3
#
# Confluent-compatible base URL: http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7
#
# The distribution is Apicurio's own published build, io.apicurio:apicurio-registry-app:3.3.3
# classifier "all" (tar.gz of the Quarkus fast-jar, quarkus-run.jar + lib/), fetched through Maven
# so that it is checksum-verified and cached in ~/.m2. Its classes are Java 21 bytecode, so a
# JDK 21+ is needed at run time (Java 17 is not enough).
set -euo pipefail

APICURIO_VERSION=3.3.3
ARTIFACT="io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$(realpath -m "${FIN_CACHE_DIR:-$REPO_ROOT/.cache}")"
DIST_DIR="$CACHE_DIR/apicurio-$APICURIO_VERSION"
MARKER="$DIST_DIR/.fin-fetched"
PORT="${REGISTRY_PORT:-8081}"
KAFKA_BOOTSTRAP="${REGISTRY_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
KAFKA_TOPIC="${REGISTRY_KAFKA_TOPIC:-kafkasql-journal}"
STATE_DIR="$(realpath -m "${REGISTRY_STATE_DIR:-$REPO_ROOT/.state/registry}")"
MGMT_PORT="${REGISTRY_MANAGEMENT_PORT:-0}"
HEAP="${REGISTRY_HEAP:-256m}"
GLOBAL_COMPAT="${REGISTRY_GLOBAL_COMPATIBILITY:-BACKWARD}"
START_TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
PID_FILE="$STATE_DIR/registry.pid"
URL_FILE="$STATE_DIR/url"
LOG_FILE="$STATE_DIR/registry.log"
# Which registry: Apicurio (first choice) needs Java 21+; where there is none, the project's own
# registry (registry/, Karapace's design: compacted `_schemas` topic, one writer) runs instead.
IMPL="${REGISTRY_IMPL:-auto}"
PYTHON="${REGISTRY_PYTHON:-$REPO_ROOT/.venv/bin/python}"

log() { echo "registry: $*" >&2; }
die() { log "$*"; exit 1; }

# --- java ------------------------------------------------------------------------------------
java_major() {  # prints the feature version of the given java binary, or nothing
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}'
}

find_java() {
  local cand v
  for cand in "${REGISTRY_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" \
              /usr/lib/jvm/*/bin/java; do
    if [ -z "$cand" ] || [ ! -x "$cand" ]; then continue; fi
    v="$(java_major "$cand")"
    case "$v" in ''|1.*) continue ;; esac
    if [ "$v" -ge 21 ]; then echo "$cand"; return 0; fi
  done
  return 1
}

resolve_impl() {
  case "$IMPL" in
    apicurio|python) ;;
    auto) if find_java >/dev/null; then IMPL=apicurio; else IMPL=python; fi ;;
    *) die "REGISTRY_IMPL must be auto, apicurio or python (got $IMPL)" ;;
  esac
  if [ "$IMPL" = apicurio ]; then
    BASE_URL="http://127.0.0.1:$PORT/apis/ccompat/v7"
  else
    BASE_URL="http://127.0.0.1:$PORT"
  fi
}
resolve_impl

# --- fetch -----------------------------------------------------------------------------------
cmd_fetch() {
  if [ "$IMPL" = python ] || [ -f "$MARKER" ]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch $ARTIFACT)"
  mkdir -p "$CACHE_DIR"
  # one fetch at a time (the lock is released when this shell exits)
  exec {lock_fd}>"$CACHE_DIR/.apicurio-$APICURIO_VERSION.lock"
  flock "$lock_fd"
  if [ -f "$MARKER" ]; then
    exec {lock_fd}>&-
    return 0
  fi
  rm -rf "$CACHE_DIR/.apicurio-$APICURIO_VERSION.tmp."* "$DIST_DIR"
  local tmp
  tmp="$(mktemp -d "$CACHE_DIR/.apicurio-$APICURIO_VERSION.tmp.XXXXXX")"
  # shellcheck disable=SC2064  # expand $tmp now: it is a local of this function
  trap "rm -rf '$tmp'" EXIT
  log "fetching $ARTIFACT via Maven (~160 MB the first time, then from ~/.m2)"
  # -C: fail on checksum mismatch. Maven reads the artifact from ~/.m2 when it is already there.
  if ! mvn -B -q -ntp -C "$DEP_PLUGIN:copy" -Dartifact="$ARTIFACT" \
        -DoutputDirectory="$tmp/download" -Dmdep.overWriteReleases=true >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    die "maven could not fetch $ARTIFACT"
  fi
  mkdir -p "$tmp/dist"
  tar -xzf "$tmp/download/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$tmp/dist"
  [ -f "$tmp/dist/quarkus-run.jar" ] || die "unexpected archive layout: no quarkus-run.jar"
  echo "$ARTIFACT fetched $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$tmp/dist/.fin-fetched"
  mv -T "$tmp/dist" "$DIST_DIR"
  rm -rf "$tmp"
  trap - EXIT
  exec {lock_fd}>&-   # not to be inherited by the JVM that `start` launches next
  log "installed in $DIST_DIR"
}

# --- helpers ---------------------------------------------------------------------------------
http_code() {
  curl -s -o /dev/null -m 5 -w '%{http_code}' "$BASE_URL/subjects" 2>/dev/null || true
}

answering() { [ "$(http_code)" = 200 ]; }

write_url() {  # where this registry answers, for `python app.py …` without FIN_SCHEMA_REGISTRY_URL
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$BASE_URL" >"$URL_FILE.tmp" && mv -f "$URL_FILE.tmp" "$URL_FILE"
}

port_in_use() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

kafka_reachable() {  # true if any host:port of the bootstrap list accepts a TCP connection
  local hp host port
  for hp in ${KAFKA_BOOTSTRAP//,/ }; do
    host="${hp%:*}"; port="${hp##*:}"
    timeout 2 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null && return 0
  done
  return 1
}

read_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 1
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # make sure the pid was not recycled by something else
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "fin.registry.state=$STATE_DIR" || return 1
  echo "$pid"
}

server_cmd() {  # prints the registry's command line, one word per line
  if [ "$IMPL" = python ]; then
    printf '%s\n' "$PYTHON" "-X" "fin.registry.state=$STATE_DIR" "-m" "registry" \
      "--port" "$PORT" "--bootstrap" "$KAFKA_BOOTSTRAP" "--topic" "${REGISTRY_KAFKA_TOPIC:-_schemas}"
    return 0
  fi
  local java
  java="$(find_java)" || die "no Java 21+ found (Apicurio $APICURIO_VERSION needs it); set REGISTRY_JAVA"
  printf '%s\n' \
    "$java" \
    "-Xms32m" "-Xmx$HEAP" "-XX:+UseSerialGC" "-XX:TieredStopAtLevel=1" \
    "-XX:MaxMetaspaceSize=192m" "-XX:ReservedCodeCacheSize=48m" \
    "-Djava.net.preferIPv4Stack=true" \
    "-Dfin.registry.state=$STATE_DIR" \
    "-Dquarkus.http.host=127.0.0.1" \
    "-Dquarkus.http.port=$PORT" \
    "-Dquarkus.management.host=127.0.0.1" \
    "-Dquarkus.management.port=$MGMT_PORT" \
    "-Dquarkus.http.access-log.enabled=false" \
    "-Dquarkus.http.cors.enabled=false" \
    "-Dquarkus.log.console.format=%d{yyyy-MM-dd HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %s%e%n" \
    "-Dquarkus.oidc.tenant-enabled=false" \
    "-Dquarkus.otel.sdk.disabled=true" \
    "-Dapicurio.authn.enabled=false" \
    "-Dapicurio.authn.basic-client-credentials.enabled=false" \
    "-Dapicurio.auth.role-based-authorization=false" \
    "-Dapicurio.usage.telemetry.enabled=false" \
    "-Dapicurio.mcp-tools.enabled=false" \
    "-Dapicurio.a2a.enabled=false" \
    "-Dapicurio.iceberg.enabled=false" \
    "-Dapicurio.storage.kind=kafkasql" \
    "-Dapicurio.kafkasql.bootstrap.servers=$KAFKA_BOOTSTRAP" \
    "-Dapicurio.kafkasql.topic=$KAFKA_TOPIC" \
    "-Dapicurio.kafkasql.snapshots.topic=$KAFKA_TOPIC-snapshots" \
    "-Dapicurio.kafkasql.topic.auto-create=true" \
    "-Dapicurio.kafkasql.consumer.poll.timeout=1000" \
    "-Dquarkus.log.category.\"org.apache.kafka\".level=WARN" \
    "-Dapicurio.datasource.jdbc.initial-size=2" \
    "-Dapicurio.datasource.jdbc.min-size=2" \
    "-Dapicurio.datasource.jdbc.max-size=20" \
    "-Dapicurio.ccompat.use-canonical-hash=true" \
    "-Dapicurio.rules.global.compatibility=$GLOBAL_COMPAT" \
    "-Dapicurio.rest.deletion.artifact.enabled=true" \
    "-Dapicurio.rest.deletion.artifact-version.enabled=true" \
    "-Dapicurio.storage.snapshot.location=$STATE_DIR" \
    "-Dapicurio.import.work-dir=$STATE_DIR" \
    "-Djava.io.tmpdir=$STATE_DIR/tmp" \
    "-jar" "$DIST_DIR/quarkus-run.jar"
}

# --- commands --------------------------------------------------------------------------------
cmd_status() {
  local pid
  if answering; then
    pid="$(read_pid || true)"
    echo "registry: up at $BASE_URL${pid:+ (pid $pid)}"
    return 0
  fi
  if pid="$(read_pid)"; then
    echo "registry: pid $pid alive but $BASE_URL/subjects does not answer 200"
  else
    echo "registry: not running ($BASE_URL)"
  fi
  return 1
}

cmd_start() {
  local pid
  if answering; then
    write_url
    echo "registry: already running at $BASE_URL"
    return 0
  fi
  cmd_fetch
  mkdir -p "$STATE_DIR/tmp"
  # serialize concurrent `start`s (the lock fd is closed for the JVM, so it ends with this shell)
  exec {start_lock}>"$STATE_DIR/.start.lock"
  flock "$start_lock"
  if answering; then
    write_url
    echo "registry: already running at $BASE_URL"
    return 0
  fi
  if ! pid="$(read_pid)"; then
    port_in_use "$PORT" && die "127.0.0.1:$PORT is in use by something that is not this registry (set REGISTRY_PORT)"
    kafka_reachable || die "Kafka is not reachable at $KAFKA_BOOTSTRAP (start it first: ops/kafka.sh start)"
    local -a cmd
    mapfile -t cmd < <(server_cmd)
    [ "${#cmd[@]}" -gt 1 ] || exit 1
    {
      echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) starting registry ($IMPL)" \
           "port=$PORT kafka=$KAFKA_BOOTSTRAP topic=$KAFKA_TOPIC"
    } >>"$LOG_FILE"
    cd "$STATE_DIR"
    [ "$IMPL" = python ] && export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
    setsid "${cmd[@]}" >>"$LOG_FILE" 2>&1 </dev/null {start_lock}>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
  else
    log "pid $pid is already starting; waiting for it"
  fi
  local waited=0
  while [ "$waited" -lt "$START_TIMEOUT" ]; do
    if answering; then
      write_url
      echo "registry: up at $BASE_URL (pid $pid, ${waited}s, log $LOG_FILE)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      log "process $pid exited during start-up; last log lines:"
      tail -n 40 "$LOG_FILE" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "not answering after ${START_TIMEOUT}s (is Kafka up at $KAFKA_BOOTSTRAP?); stopping it. Last log lines:"
  tail -n 40 "$LOG_FILE" >&2
  cmd_stop >/dev/null 2>&1 || true
  exit 1
}

cmd_stop() {
  local pid waited=0
  if ! pid="$(read_pid)"; then
    rm -f "$PID_FILE"
    echo "registry: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$STOP_TIMEOUT" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 50 ]; do
      sleep 0.2
      waited=$((waited + 1))
    done
    kill -0 "$pid" 2>/dev/null && die "pid $pid survived SIGKILL"
  fi
  rm -f "$PID_FILE" "$URL_FILE"
  echo "registry: stopped (pid $pid)"
}

cmd_run() {
  cmd_fetch
  mkdir -p "$STATE_DIR/tmp"
  kafka_reachable || die "Kafka is not reachable at $KAFKA_BOOTSTRAP (start it first: ops/kafka.sh start)"
  local -a cmd
  mapfile -t cmd < <(server_cmd)
  [ "${#cmd[@]}" -gt 1 ] || exit 1
  log "Confluent-compatible base URL: $BASE_URL"
  write_url
  cd "$STATE_DIR"
  [ "$IMPL" = python ] && export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
  exec "${cmd[@]}"
}

case "${1:-}" in
  fetch)  cmd_fetch; echo "registry: Apicurio $APICURIO_VERSION ready in $DIST_DIR" ;;
  start)  cmd_start ;;
  stop)   cmd_stop ;;
  status) cmd_status ;;
  run)    cmd_run ;;
  url)    echo "$BASE_URL" ;;
  *)      echo "usage: $0 fetch|start|stop|status|run|url" >&2; exit 2 ;;
esac
