#!/usr/bin/env bash
# ops/prometheus.sh — a real Prometheus for FIN, without Docker: the binaries of Debian's
# `prometheus` package (fetched once with `apt-get download`, unpacked into the cache, never
# installed system-wide, so no service is started behind our back), scraping every FIN worker
# and evaluating ops/prometheus/rules.yml, the same rules docker-compose's Prometheus loads.
#
#   ops/prometheus.sh fetch                 download once into the cache (then works offline)
#   ops/prometheus.sh start                 fetch if needed, write the config, start in the
#                                           background, return when /-/ready answers; when already
#                                           running: rewrite the config and targets, reload (SIGHUP)
#   ops/prometheus.sh stop                  SIGTERM, up to 30 s, then SIGKILL
#   ops/prometheus.sh status                exit 0 if running and ready; 3 if not running
#   ops/prometheus.sh url                   the base URL (http://127.0.0.1:$PROMETHEUS_PORT)
#   ops/prometheus.sh targets H:P [H:P...]  the workers to scrape (picked up within seconds)
#   ops/prometheus.sh promtool ARGS...      the matching promtool, e.g. promtool test rules FILE
#   ops/prometheus.sh clean                 stop, then delete the state dir (the cache stays)
#
# Environment (all optional):
#   PROMETHEUS_PORT=9090                       loopback port of this instance
#   PROMETHEUS_STATE_DIR=<repo>/.state/prometheus   config, TSDB, pid file, prometheus.log
#   PROMETHEUS_TARGETS=127.0.0.1:6066           comma-separated workers, used when the state dir
#                                               has no targets file yet (`targets` replaces it)
#   PROMETHEUS_SCRAPE_INTERVAL=5s               scrape and rule evaluation interval
#   PROMETHEUS_SCRAPE_KEY                       FIN read key, sent as `Authorization: Bearer`;
#                                               unset: the read= line of <repo>/.state/api-keys
#                                               (written by `make run`), else no key
#   PROMETHEUS_RETENTION=2d                     TSDB retention
#   PROMETHEUS_START_TIMEOUT=60                 seconds `start` waits for /-/ready
#   FIN_CACHE_DIR=<repo>/.cache                 binaries go to $FIN_CACHE_DIR/prometheus/
set -euo pipefail

OPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$OPS_DIR")
RULES_FILE=$OPS_DIR/prometheus/rules.yml

CACHE_DIR=$(realpath -m "${FIN_CACHE_DIR:-$REPO_DIR/.cache}")
PROM_HOME=$CACHE_DIR/prometheus
PROMETHEUS=$PROM_HOME/prometheus
PROMTOOL=$PROM_HOME/promtool
FETCH_MARKER=$PROM_HOME/.fin-fetched

STATE_DIR=$(realpath -m "${PROMETHEUS_STATE_DIR:-$REPO_DIR/.state/prometheus}")
CONFIG_FILE=$STATE_DIR/prometheus.yml
TARGETS_FILE=$STATE_DIR/targets.json
KEY_FILE=$STATE_DIR/scrape-key
PID_FILE=$STATE_DIR/prometheus.pid
LOG_FILE=$STATE_DIR/prometheus.log

PORT=${PROMETHEUS_PORT:-9090}
SCRAPE_INTERVAL=${PROMETHEUS_SCRAPE_INTERVAL:-5s}
RETENTION=${PROMETHEUS_RETENTION:-2d}
START_TIMEOUT=${PROMETHEUS_START_TIMEOUT:-60}
STOP_TIMEOUT=30
# Debian 12's package is 2.42; rules and queries here stay within what 2.42 and compose's 3.x share.
MIN_MAJOR=2
MIN_MINOR=42

log() { printf 'prometheus.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

[[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) || die "PROMETHEUS_PORT must be a TCP port, got '$PORT'"

# ----------------------------------------------------------------------------------------- fetch

fetched() { [[ -f $FETCH_MARKER && -x $PROMETHEUS && -x $PROMTOOL ]]; }

version_ok() { # "2.42.0"
	local major minor
	IFS=. read -r major minor _ <<<"$1"
	[[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
	((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
}

fetch() {
	fetched && return 0
	command -v apt-get >/dev/null || die "apt-get not found: Prometheus is fetched as Debian's 'prometheus' package"
	mkdir -p "$CACHE_DIR"
	local lock
	exec {lock}>"$CACHE_DIR/.prometheus.lock"
	flock "$lock"
	if fetched; then
		exec {lock}>&-
		return 0
	fi
	rm -rf "$CACHE_DIR/.prometheus.tmp."*
	local tmp started=$SECONDS
	tmp=$(mktemp -d "$CACHE_DIR/.prometheus.tmp.XXXXXX")
	chmod 755 "$tmp"
	log "fetching Debian's prometheus package into $PROM_HOME"
	# apt-get download writes into the current directory and needs no root; an empty or stale
	# package list (a fresh machine) needs one `apt-get update`, which does.
	if ! (cd "$tmp" && apt-get download -q prometheus >"$tmp/fetch.log" 2>&1); then
		if [[ $(id -u) == 0 ]]; then
			log "apt-get download failed; running apt-get update once and retrying"
			apt-get update -qq >>"$tmp/fetch.log" 2>&1 || true
		fi
		if ! (cd "$tmp" && apt-get download -q prometheus >>"$tmp/fetch.log" 2>&1); then
			tail -n 20 "$tmp/fetch.log" >&2
			rm -rf "$tmp"
			die "could not fetch Debian's prometheus package (as root: apt-get update; output above)"
		fi
	fi
	local deb
	deb=$(find "$tmp" -maxdepth 1 -name 'prometheus_*.deb' | head -n 1)
	[[ -n $deb ]] || die "apt-get download left no prometheus_*.deb in $tmp"
	dpkg-deb -x "$deb" "$tmp/root"
	mv "$tmp/root/usr/bin/prometheus" "$tmp/root/usr/bin/promtool" "$tmp/"
	local version
	version=$("$tmp/prometheus" --version 2>&1 | sed -n 's/^prometheus, version \([0-9.]*\).*/\1/p')
	if ! version_ok "$version"; then
		rm -rf "$tmp"
		die "the fetched prometheus is version '$version'; $MIN_MAJOR.$MIN_MINOR or newer is needed"
	fi
	basename "$deb" >"$tmp/PACKAGE"
	echo "$version" >"$tmp/VERSION"
	rm -rf "$tmp/root" "$deb"
	: >"$tmp/.fin-fetched"
	local old=
	if [[ -e $PROM_HOME ]]; then
		old=$CACHE_DIR/.prometheus.tmp.old.$$
		mv "$PROM_HOME" "$old"
	fi
	mv "$tmp" "$PROM_HOME"
	[[ -z $old ]] || rm -rf "$old"
	exec {lock}>&-
	log "fetched prometheus $version ($(<"$PROM_HOME/PACKAGE")) in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------------------------------- config

write_targets() { # host:port...
	local target json="" sep=""
	for target in "$@"; do
		[[ $target =~ ^[A-Za-z0-9._-]+:[0-9]+$ ]] || die "a target is host:port, got '$target'"
		json+="$sep\"$target\""
		sep=", "
	done
	mkdir -p "$STATE_DIR"
	# Written whole and renamed: Prometheus watches this file and must never read half of it.
	printf '[{"targets": [%s], "labels": {}}]\n' "$json" >"$TARGETS_FILE.tmp"
	mv "$TARGETS_FILE.tmp" "$TARGETS_FILE"
}

scrape_key() {
	if [[ -n ${PROMETHEUS_SCRAPE_KEY:-} ]]; then
		printf '%s' "$PROMETHEUS_SCRAPE_KEY"
	elif [[ -f $REPO_DIR/.state/api-keys ]]; then
		sed -n 's/^read=//p' "$REPO_DIR/.state/api-keys"
	fi
}

write_config() {
	mkdir -p "$STATE_DIR/data"
	if [[ ! -f $TARGETS_FILE ]]; then
		local -a targets
		IFS=, read -r -a targets <<<"${PROMETHEUS_TARGETS:-127.0.0.1:6066}"
		write_targets "${targets[@]}"
	fi
	local key auth=""
	key=$(scrape_key)
	if [[ -n $key ]]; then
		(umask 077 && printf '%s' "$key" >"$KEY_FILE")
		# FIN takes the read key as a bearer token too (README "Security").
		auth=$'    authorization:\n      type: Bearer\n      credentials_file: '"$KEY_FILE"$'\n'
	else
		rm -f "$KEY_FILE"
	fi
	cat >"$CONFIG_FILE.tmp" <<YAML
# Written by ops/prometheus.sh on every start; edit the script, not this file.
global:
  scrape_interval: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL

rule_files:
  - $RULES_FILE

scrape_configs:
  - job_name: fin-workers
    metrics_path: /metrics
$auth    file_sd_configs:
      - files: [$TARGETS_FILE]
YAML
	"$PROMTOOL" check config "$CONFIG_FILE.tmp" >"$STATE_DIR/check.log" 2>&1 || {
		cat "$STATE_DIR/check.log" >&2
		die "the generated config does not pass promtool check config"
	}
	mv "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

# ------------------------------------------------------------------------------- process + probe

alive() { # pid
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

# The pid file alone is not trusted: the process must be prometheus on this state dir's config.
running_pid() {
	local pid arg ours=0
	local -a args
	[[ -f $PID_FILE ]] || return 1
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	alive "$pid" || return 1
	mapfile -d '' args <"/proc/$pid/cmdline" 2>/dev/null || return 1
	for arg in "${args[@]}"; do
		[[ $arg != "--config.file=$CONFIG_FILE" ]] || ours=1
	done
	((ours)) || return 1
	echo "$pid"
}

ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/-/ready" 2>/dev/null; }

wait_ready() { # pid
	local deadline=$((SECONDS + START_TIMEOUT))
	while ((SECONDS < deadline)); do
		alive "$1" || return 2
		ready && return 0
		sleep 0.2
	done
	return 1
}

STATE_LOCK=
lock_state() {
	mkdir -p "$STATE_DIR"
	exec {STATE_LOCK}>"$STATE_DIR/.lock"
	flock "$STATE_LOCK"
}

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

# ------------------------------------------------------------------------------------- commands

cmd_start() {
	fetch
	lock_state
	local pid
	if pid=$(running_pid); then
		write_config
		kill -HUP "$pid"
		wait_ready "$pid" || die "pid $pid does not answer on 127.0.0.1:$PORT; see $LOG_FILE"
		log "already running (pid $pid) on 127.0.0.1:$PORT; config reloaded"
		return 0
	fi
	rm -f "$PID_FILE"
	if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" 2>/dev/null; then
		die "127.0.0.1:$PORT is already in use by another process (choose PROMETHEUS_PORT)"
	fi
	write_config
	[[ ! -f $LOG_FILE ]] || mv -f "$LOG_FILE" "$LOG_FILE.prev"
	local started=$SECONDS
	setsid "$PROMETHEUS" \
		"--config.file=$CONFIG_FILE" \
		"--storage.tsdb.path=$STATE_DIR/data" \
		"--storage.tsdb.retention.time=$RETENTION" \
		"--web.listen-address=127.0.0.1:$PORT" \
		>>"$LOG_FILE" 2>&1 </dev/null {STATE_LOCK}>&- &
	pid=$!
	echo "$pid" >"$PID_FILE"
	local rc=0
	wait_ready "$pid" || rc=$?
	if ((rc != 0)); then
		log "prometheus did not become ready on 127.0.0.1:$PORT (rc $rc); last lines of $LOG_FILE:"
		tail -n 30 "$LOG_FILE" >&2 || true
		stop_pid "$pid"
		rm -f "$PID_FILE"
		exit 1
	fi
	log "started prometheus $(<"$PROM_HOME/VERSION") (pid $pid) on http://127.0.0.1:$PORT in $((SECONDS - started)) s; log: $LOG_FILE"
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
	if ready; then
		echo "running (pid $pid) on http://127.0.0.1:$PORT"
		exit 0
	fi
	echo "pid $pid is running but not ready on 127.0.0.1:$PORT"
	exit 1
}

cmd_clean() {
	cmd_stop
	# Only a directory this script made: it holds prometheus.yml next to data/.
	if [[ -d $STATE_DIR && -f $CONFIG_FILE ]]; then
		rm -rf "$STATE_DIR"
		log "deleted $STATE_DIR"
	fi
}

case ${1:-} in
fetch) fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
url) echo "http://127.0.0.1:$PORT" ;;
targets)
	shift
	(($# > 0)) || die "targets needs at least one host:port"
	write_targets "$@"
	;;
promtool)
	shift
	fetch
	exec "$PROMTOOL" "$@"
	;;
clean) cmd_clean ;;
*) usage ;;
esac
