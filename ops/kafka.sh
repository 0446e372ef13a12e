#!/usr/bin/env bash
# ops/kafka.sh — a real Apache Kafka 4.3.1 (KRaft, one node that is broker and controller) for FIN,
# without Docker: the jars come from Maven Central through ops/kafka/pom.xml and run on the local JDK.
#
#   ops/kafka.sh fetch                 download the jars once into the cache (then works offline)
#   ops/kafka.sh start                 fetch if needed, format storage once, start in the background,
#                                      return when the broker answers (no-op if already running)
#   ops/kafka.sh stop                  SIGTERM, up to 30 s for a clean shutdown, then SIGKILL
#   ops/kafka.sh status                exit 0 if running and answering; 1 if its process is up but
#                                      not answering; 3 if not running
#   ops/kafka.sh run                   like start, but in the foreground (exec) for a supervisor
#   ops/kafka.sh tool NAME [ARGS...]   a Kafka CLI tool by its script name, e.g.
#                                      tool kafka-topics --bootstrap-server 127.0.0.1:9092 --list
#   ops/kafka.sh clean                 stop, then delete the state dir (the jar cache stays)
#
# Environment (all optional):
#   KAFKA_PORT=9092  KAFKA_CONTROLLER_PORT=9093   loopback ports of this instance
#   KAFKA_STATE_DIR=<repo>/.state/kafka            config, data, pid file and kafka.log of this instance
#   FIN_CACHE_DIR=<repo>/.cache                    jars go to $FIN_CACHE_DIR/kafka-4.3.1/libs
#   KAFKA_HEAP_OPTS="-Xms256m -Xmx1g"              broker heap
#   KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS         more broker JVM flags (same names as Kafka's scripts)
#   KAFKA_GC_LOG_OPTS                              the broker's GC log (default: $KAFKA_STATE_DIR/gc.log,
#                                                  two files of 10 MB, wall-clock stamps; "" for none)
#   KAFKA_TOOL_HEAP_OPTS="-Xmx512m"                heap of `tool` JVMs
#   KAFKA_START_TIMEOUT=60                         seconds `start` waits for the broker to answer
# Instances with different ports and state dirs run side by side (tests start their own).
set -euo pipefail

readonly KAFKA_VERSION=4.3.1

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$OPS_DIR")
CONF_DIR=$OPS_DIR/kafka
POM=$CONF_DIR/pom.xml

# Relative paths are resolved now: the JVM gets them inside server.properties, read from elsewhere.
CACHE_DIR=$(realpath -m "${FIN_CACHE_DIR:-$REPO_DIR/.cache}")
KAFKA_HOME=$CACHE_DIR/kafka-$KAFKA_VERSION
LIBS_DIR=$KAFKA_HOME/libs
FETCH_MARKER=$KAFKA_HOME/.fetch-complete

STATE_DIR=$(realpath -m "${KAFKA_STATE_DIR:-$REPO_DIR/.state/kafka}")
DATA_DIR=$STATE_DIR/data
PROPS_FILE=$STATE_DIR/server.properties
PID_FILE=$STATE_DIR/kafka.pid
LOG_FILE=$STATE_DIR/kafka.log
# Written into every state dir we create, so `clean` never deletes a directory that isn't ours
# (think KAFKA_STATE_DIR=/tmp by mistake).
STATE_MARKER=$STATE_DIR/.fin-kafka-state

PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
STOP_TIMEOUT=30

JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
# Word-split on purpose: these hold several JVM flags, like in Kafka's own scripts.
read -r -a HEAP_OPTS <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
# Kafka's own production GC settings (G1, pauses aimed at 20 ms, the concurrent cycle starting
# at 35 % occupancy), as kafka-run-class.sh sets them. The Serial collector used here before
# started as fast, but its young pauses grew to 40-70 ms as the old generation filled and a
# full collection stopped the broker for ~170 ms every several minutes under load, twice in the
# middle of the benchmark's half-load latency window (bench/gclog.py, docs/design.md "Latency").
read -r -a JVM_PERF_OPTS <<<"${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
read -r -a EXTRA_OPTS <<<"${KAFKA_OPTS:-}"
# A GC log, as Kafka's own kafka-server-start.sh keeps one (-loggc): a broker pause holds every
# answer for its length, and the benchmark counts the pauses inside each latency load from it
# (bench/gclog.py), which needs the wall-clock `time` decoration.
read -r -a GC_LOG_OPTS <<<"${KAFKA_GC_LOG_OPTS-"-Xlog:gc:file=$STATE_DIR/gc.log:time,uptime:filecount=2,filesize=10M"}"
read -r -a TOOL_HEAP_OPTS <<<"${KAFKA_TOOL_HEAP_OPTS:--Xmx512m}"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

check_port() { # name value
	if ! [[ $2 =~ ^[0-9]+$ ]] || ((10#$2 < 1 || 10#$2 > 65535)); then
		die "$1 must be a TCP port, got '$2'"
	fi
}

# Script name -> main class, as in the bin/*.sh scripts of the Kafka 4.3.1 distribution
# (all checked against the jars fetched by ops/kafka/pom.xml).
tool_class() {
	case $1 in
	kafka-topics) echo org.apache.kafka.tools.TopicCommand ;;
	kafka-consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
	kafka-share-groups) echo org.apache.kafka.tools.consumer.group.ShareGroupCommand ;;
	kafka-streams-groups) echo org.apache.kafka.tools.streams.StreamsGroupCommand ;;
	kafka-groups) echo org.apache.kafka.tools.GroupsCommand ;;
	kafka-producer-perf-test) echo org.apache.kafka.tools.ProducerPerformance ;;
	kafka-consumer-perf-test) echo org.apache.kafka.tools.ConsumerPerformance ;;
	kafka-share-consumer-perf-test) echo org.apache.kafka.tools.ShareConsumerPerformance ;;
	kafka-e2e-latency) echo org.apache.kafka.tools.EndToEndLatency ;;
	kafka-console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
	kafka-console-share-consumer) echo org.apache.kafka.tools.consumer.ConsoleShareConsumer ;;
	kafka-console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
	kafka-get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
	kafka-delete-records) echo org.apache.kafka.tools.DeleteRecordsCommand ;;
	kafka-broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
	kafka-metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
	kafka-features) echo org.apache.kafka.tools.FeatureCommand ;;
	kafka-cluster) echo org.apache.kafka.tools.ClusterTool ;;
	kafka-log-dirs) echo org.apache.kafka.tools.LogDirsCommand ;;
	kafka-dump-log) echo org.apache.kafka.tools.DumpLogSegments ;;
	kafka-transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
	kafka-acls) echo org.apache.kafka.tools.AclCommand ;;
	kafka-leader-election) echo org.apache.kafka.tools.LeaderElectionCommand ;;
	kafka-reassign-partitions) echo org.apache.kafka.tools.reassign.ReassignPartitionsCommand ;;
	kafka-verifiable-producer) echo org.apache.kafka.tools.VerifiableProducer ;;
	kafka-verifiable-consumer) echo org.apache.kafka.tools.VerifiableConsumer ;;
	kafka-streams-application-reset) echo org.apache.kafka.tools.StreamsResetter ;;
	kafka-configs) echo kafka.admin.ConfigCommand ;;
	kafka-storage) echo kafka.tools.StorageTool ;;
	kafka-server-start) echo kafka.Kafka ;;
	*) return 1 ;;
	esac
}
readonly TOOL_NAMES="kafka-topics kafka-consumer-groups kafka-share-groups kafka-streams-groups
  kafka-groups kafka-producer-perf-test kafka-consumer-perf-test kafka-share-consumer-perf-test
  kafka-e2e-latency kafka-console-consumer kafka-console-share-consumer kafka-console-producer
  kafka-get-offsets kafka-delete-records kafka-broker-api-versions kafka-metadata-quorum
  kafka-features kafka-cluster kafka-log-dirs kafka-dump-log kafka-transactions kafka-acls
  kafka-leader-election kafka-reassign-partitions kafka-verifiable-producer
  kafka-verifiable-consumer kafka-streams-application-reset kafka-configs kafka-storage
  kafka-server-start kafka-run-class (CLASS ARGS...)"

# ---------------------------------------------------------------------------------------- fetch

pom_checksum() { sha256sum "$POM" | cut -d' ' -f1; }

# The marker holds the pom's checksum: present and equal means a fetch of exactly this pom finished,
# so nothing touches the network; editing the pom makes the next call fetch again.
fetched() { [[ -f $FETCH_MARKER && $(<"$FETCH_MARKER") == "$(pom_checksum)" ]]; }

fetch() {
	fetched && return 0
	command -v mvn >/dev/null || die "mvn not found: it is needed once, to fetch Kafka from Maven Central"
	mkdir -p "$CACHE_DIR"
	# Parallel callers (test sessions) fetch one at a time; whoever waited finds the marker and stops.
	local lock
	exec {lock}>"$CACHE_DIR/.kafka-$KAFKA_VERSION.lock"
	flock "$lock"
	if fetched; then
		exec {lock}>&-
		return 0
	fi
	# Leftovers of interrupted fetches: safe to remove, since we hold the lock.
	rm -rf "$CACHE_DIR/.kafka-$KAFKA_VERSION.tmp."*

	log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR"
	# Everything lands in a temp dir and is renamed into place only when complete, so a killed
	# fetch can never be mistaken for a finished one. Maven's own ~/.m2 cache is used as usual.
	local tmp started=$SECONDS
	tmp=$(mktemp -d "$CACHE_DIR/.kafka-$KAFKA_VERSION.tmp.XXXXXX")
	chmod 755 "$tmp" # mktemp makes it private; the cache is shared by every user of the checkout
	if ! mvn -B -ntp -f "$POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/fetch.log" 2>&1; then
		tail -n 40 "$tmp/fetch.log" >&2
		rm -rf "$tmp"
		die "maven could not fetch Kafka $KAFKA_VERSION (output above)"
	fi
	local jar
	for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar"; do
		[[ -f $tmp/libs/$jar ]] || {
			rm -rf "$tmp"
			die "fetch finished without $jar"
		}
	done
	pom_checksum >"$tmp/.fetch-complete"
	# A previous fetch of an older pom is swapped out, not merged, so no stale jar stays on the classpath.
	local old=
	if [[ -e $KAFKA_HOME ]]; then
		old=$CACHE_DIR/.kafka-$KAFKA_VERSION.tmp.old.$$
		mv "$KAFKA_HOME" "$old"
	fi
	mv "$tmp" "$KAFKA_HOME"
	[[ -z $old ]] || rm -rf "$old"
	exec {lock}>&-
	log "fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
}

# ------------------------------------------------------------------------------ process + probe

# Prints the pid of this instance's broker if it is alive. The pid file alone is not trusted: the
# command line must be kafka.Kafka on this state dir's properties, so a recycled pid of an unrelated
# process is never signalled, and a zombie counts as dead.
running_pid() {
	local pid arg main=0 props=0
	local -a args
	[[ -f $PID_FILE ]] || return 1
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	mapfile -d '' args <"/proc/$pid/cmdline" 2>/dev/null || return 1
	for arg in "${args[@]}"; do
		[[ $arg != kafka.Kafka ]] || main=1
		[[ $arg != "$PROPS_FILE" ]] || props=1
	done
	((main && props)) || return 1
	echo "$pid"
}

alive() { # pid
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1 (no Kafka protocol involved).
port_open() {
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash, which gets the port as an argument
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True when a Kafka broker on 127.0.0.1:$1 answers a Metadata request listing at least one broker.
# An open port is not enough: the socket is bound before the broker has caught up with the metadata
# log and been unfenced, and only then does it list itself and serve produce/fetch. Plain bash so
# no JVM (about a second of CPU each) is started per poll.
# Request: Metadata (api key 3) v4, correlation id 1, client id "fin", no topics, no auto-create.
# Response v4 starts: size, correlation id, throttle_time_ms, broker count (4 big-endian bytes each).
kafka_answers() {
	local hex
	# shellcheck disable=SC2016 # $1 is expanded by the inner bash, which gets the port as an argument
	hex=$(timeout 5 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "\x00\x00\x00\x12\x00\x03\x00\x04\x00\x00\x00\x01\x00\x03fin\x00\x00\x00\x00\x00" >&3
		head -c 16 <&3' _ "$1" 2>/dev/null | od -An -v -tx1 | tr -d ' \n') || return 1
	[[ ${#hex} -eq 32 && ${hex:8:8} == 00000001 ]] || return 1
	((16#${hex:24:8} > 0))
}

# Waits until this instance's broker (pid $1) answers. Returns 1 on timeout, 2 as soon as the
# process is gone (bad flags, port taken, corrupt data: no point waiting out the timeout).
wait_ready() { # pid
	local deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		alive "$1" || return 2
		kafka_answers "$PORT" && return 0
		sleep 0.25
	done
	return 1
}

# ------------------------------------------------------------------------------- configuration

check_ports() {
	check_port KAFKA_PORT "$PORT"
	check_port KAFKA_CONTROLLER_PORT "$CONTROLLER_PORT"
	[[ $PORT != "$CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
}

# Another broker answering on our port would make the readiness check pass for the wrong process.
ensure_ports_free() {
	local p
	for p in "$PORT" "$CONTROLLER_PORT"; do
		! port_open "$p" || die "127.0.0.1:$p is already in use by another process (choose KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
	done
}

# server.properties is rewritten from the template on every start, so port changes take effect.
# Placeholders are replaced with quoted bash substitutions (sed would need escaping for paths).
write_properties() {
	local line out=()
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line//@KAFKA_PORT@/"$PORT"}
		line=${line//@KAFKA_CONTROLLER_PORT@/"$CONTROLLER_PORT"}
		line=${line//@KAFKA_DATA_DIR@/"$DATA_DIR"}
		out+=("$line")
	done <"$CONF_DIR/server.properties.template"
	printf '%s\n' "${out[@]}" >"$PROPS_FILE.tmp"
	mv "$PROPS_FILE.tmp" "$PROPS_FILE"
}

# Kafka cluster ids are 16 random bytes in unpadded url-safe base64; like Kafka's own generator we
# avoid a leading '-' so the id can't be mistaken for a command-line flag.
random_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		[[ $id == -* ]] || break
	done
	echo "$id"
}

# Formats KRaft storage once per state dir: meta.properties present means formatted. With a static
# controller.quorum.voters (see the template) no --standalone/--initial-controllers flag is needed.
format_storage() {
	[[ -f $DATA_DIR/meta.properties ]] && return 0
	local id
	id=$(random_cluster_id)
	log "formatting KRaft storage in $DATA_DIR (cluster id $id)"
	if ! "$JAVA" "${TOOL_HEAP_OPTS[@]}" -XX:+UseSerialGC \
		-Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" -cp "$LIBS_DIR/*" \
		kafka.tools.StorageTool format --config "$PROPS_FILE" --cluster-id "$id" >>"$LOG_FILE" 2>&1; then
		tail -n 20 "$LOG_FILE" >&2
		die "formatting $DATA_DIR failed"
	fi
}

prepare() {
	check_ports
	mkdir -p "$DATA_DIR"
	: >"$STATE_MARKER"
	write_properties
	format_storage
}

# Holds a lock on the state dir until this script exits, so two start/run/stop/clean calls on one
# instance never interleave. Java is started with the lock fd closed, or the broker would keep it.
STATE_LOCK=
lock_state() {
	mkdir -p "$STATE_DIR"
	exec {STATE_LOCK}>"$STATE_DIR/.lock"
	flock "$STATE_LOCK"
}

broker_cmd() {
	BROKER_CMD=("$JAVA" "${HEAP_OPTS[@]}" "${JVM_PERF_OPTS[@]}" "${GC_LOG_OPTS[@]}" "${EXTRA_OPTS[@]}"
		-Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml"
		-cp "$LIBS_DIR/*" kafka.Kafka "$PROPS_FILE")
}

# -------------------------------------------------------------------------------------- commands

cmd_start() {
	check_ports
	fetch
	lock_state
	local pid
	if pid=$(running_pid); then
		# Already up, or still starting from an earlier call: either way wait for it, start nothing.
		if wait_ready "$pid"; then
			log "already running (pid $pid) on 127.0.0.1:$PORT"
			return 0
		fi
		die "pid $pid is running but does not answer on 127.0.0.1:$PORT; see $LOG_FILE (or: $0 stop)"
	fi
	rm -f "$PID_FILE"
	ensure_ports_free
	prepare
	[[ ! -f $LOG_FILE ]] || mv -f "$LOG_FILE" "$LOG_FILE.prev"
	broker_cmd
	local started=$SECONDS
	# setsid: the broker gets its own session, so a Ctrl-C or hang-up aimed at the caller's terminal
	# or process group does not take it down with the caller; only `stop` does.
	setsid "${BROKER_CMD[@]}" >>"$LOG_FILE" 2>&1 </dev/null {STATE_LOCK}>&- &
	pid=$!
	echo "$pid" >"$PID_FILE"
	local rc=0
	wait_ready "$pid" || rc=$?
	if ((rc != 0)); then
		if ((rc == 2)); then
			log "broker exited during startup; last lines of $LOG_FILE:"
		else
			log "broker did not answer on 127.0.0.1:$PORT within $START_TIMEOUT s; last lines of $LOG_FILE:"
		fi
		tail -n 40 "$LOG_FILE" >&2 || true
		# Don't leave a half-started broker behind.
		stop_pid "$pid"
		rm -f "$PID_FILE"
		exit 1
	fi
	log "started (pid $pid) on 127.0.0.1:$PORT in $((SECONDS - started)) s; log: $LOG_FILE"
}

cmd_run() {
	check_ports
	fetch
	lock_state
	local pid
	if pid=$(running_pid); then
		die "already running (pid $pid); stop it first"
	fi
	ensure_ports_free
	prepare
	broker_cmd
	# exec keeps this pid, so the pid file stays right and the supervisor signals the JVM directly.
	echo "$$" >"$PID_FILE"
	exec "${BROKER_CMD[@]}" {STATE_LOCK}>&-
}

# SIGTERM triggers Kafka's controlled shutdown (flushes logs, writes the clean-shutdown marker, so
# the next start skips log recovery); SIGKILL only if it hangs.
stop_pid() { # pid
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	log "pid $pid ignored SIGTERM for $STOP_TIMEOUT s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	die "pid $pid survived SIGKILL"
}

cmd_stop() {
	[[ -d $STATE_DIR ]] || return 0
	lock_state
	local pid
	if ! pid=$(running_pid); then
		rm -f "$PID_FILE"
		log "not running"
		return 0
	fi
	stop_pid "$pid"
	rm -f "$PID_FILE"
	log "stopped (pid $pid)"
}

cmd_status() {
	local pid
	if ! pid=$(running_pid); then
		echo "not running"
		exit 3
	fi
	if kafka_answers "$PORT"; then
		echo "running (pid $pid) on 127.0.0.1:$PORT"
		exit 0
	fi
	echo "pid $pid is running but does not answer on 127.0.0.1:$PORT"
	exit 1
}

cmd_clean() {
	[[ -d $STATE_DIR ]] || return 0
	case $STATE_DIR in
	/ | "$HOME" | "$REPO_DIR" | "$CACHE_DIR") die "refusing to delete $STATE_DIR" ;;
	esac
	if [[ ! -f $STATE_MARKER ]] && [[ -n $(ls -A "$STATE_DIR") ]]; then
		die "refusing to delete $STATE_DIR: not a kafka.sh state dir (no $(basename "$STATE_MARKER"))"
	fi
	cmd_stop
	rm -rf "$STATE_DIR"
	log "deleted $STATE_DIR"
}

cmd_tool() {
	local name=${1:-} class
	if [[ -z $name ]]; then
		log "usage: $0 tool NAME [ARGS...]; NAME is one of:"
		echo "$TOOL_NAMES" >&2
		exit 2
	fi
	shift
	name=${name%.sh}
	if [[ $name == kafka-run-class ]]; then
		(($# > 0)) || die "usage: $0 tool kafka-run-class CLASS [ARGS...]"
		class=$1
		shift
	elif ! class=$(tool_class "$name"); then
		log "unknown tool '$name'; known:"
		echo "$TOOL_NAMES" >&2
		exit 2
	fi
	fetch
	# Serial GC and a small heap: tools are short-lived clients on a shared 2-core machine.
	exec "$JAVA" "${TOOL_HEAP_OPTS[@]}" -XX:+UseSerialGC -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$CONF_DIR/tools-log4j2.xml" \
		-cp "$LIBS_DIR/*" "$class" "$@"
}

main() {
	local cmd=${1:-}
	(($# == 0)) || shift
	case $cmd in
	fetch) fetch ;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	run) cmd_run ;;
	tool) cmd_tool "$@" ;;
	clean) cmd_clean ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
