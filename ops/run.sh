#!/usr/bin/env bash
# `make run`: the main job in the foreground. Brings up local Kafka and the schema registry
# (fetching them on first use), creates the topics, registers the schemas, starts one worker,
# publishes the specification's sample events and then a steady synthetic stream, and prints the
# URLs and API keys. Ctrl-C stops everything this script started and leaves no process behind.
#
# Keys: the worker refuses commands without a write key. Unless FIN_API_KEY is set, this script
# makes a read key and a write key once, keeps them in .state/api-keys (mode 600) so links and
# scripts keep working across runs, and prints them with example curl lines.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
RATE=${FIN_DEMO_RATE:-20}
STATE=.state
mkdir -p "$STATE"

kafka_was_running=0; registry_was_running=0
ops/kafka.sh status >/dev/null 2>&1 && kafka_was_running=1
ops/registry.sh status >/dev/null 2>&1 && registry_was_running=1
prometheus_was_running=0
ops/prometheus.sh status >/dev/null 2>&1 && prometheus_was_running=1

worker_pid=""; producer_pid=""
cleanup() {
  trap - EXIT INT TERM
  echo; echo "run: stopping…"
  for pid in $producer_pid $worker_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $producer_pid $worker_pid; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Leave running what was already running before we started (`make up`).
  [ "$prometheus_was_running" = 1 ] || ops/prometheus.sh stop || true
  [ "$registry_was_running" = 1 ] || ops/registry.sh stop || true
  [ "$kafka_was_running" = 1 ] || ops/kafka.sh stop || true
  echo "run: stopped."
}
trap cleanup EXIT INT TERM

ops/kafka.sh start
ops/registry.sh start
export FIN_KAFKA_BOOTSTRAP=${FIN_KAFKA_BOOTSTRAP:-127.0.0.1:9092}
FIN_SCHEMA_REGISTRY_URL=${FIN_SCHEMA_REGISTRY_URL:-$(ops/registry.sh url)}
export FIN_SCHEMA_REGISTRY_URL
export FIN_WEB_PORT=${FIN_WEB_PORT:-6066}
export FIN_DATA_DIR=${FIN_DATA_DIR:-$STATE/worker}

keys_file="$STATE/api-keys"
if [ -z "${FIN_API_KEY:-}" ]; then
  if ! grep -q '^write=' "$keys_file" 2>/dev/null; then
    (umask 077 && $PY -c 'import secrets
print("read=" + secrets.token_urlsafe(24))
print("write=" + secrets.token_urlsafe(24))' >"$keys_file")
  fi
  FIN_API_KEY=$(sed -n 's/^read=//p' "$keys_file")
  FIN_API_WRITE_KEY=${FIN_API_WRITE_KEY:-$(sed -n 's/^write=//p' "$keys_file")}
fi
# The worker and the demo traffic get the same keys (Settings: no write key means the read key).
export FIN_API_KEY FIN_API_WRITE_KEY=${FIN_API_WRITE_KEY:-$FIN_API_KEY}

# Prometheus scrapes the worker with the read key (it reads .state/api-keys, or this variable).
prometheus_url="not running (ops/prometheus.sh start failed; see above)"
if PROMETHEUS_SCRAPE_KEY=$FIN_API_KEY PROMETHEUS_TARGETS=127.0.0.1:$FIN_WEB_PORT ops/prometheus.sh start \
  && ops/prometheus.sh targets "127.0.0.1:$FIN_WEB_PORT"; then
  prometheus_url="$(ops/prometheus.sh url)   (alerts: $(ops/prometheus.sh url)/alerts, rules ops/prometheus/rules.yml)"
fi

$PY app.py topics create
$PY app.py schemas register >/dev/null
$PY app.py worker >"$STATE/worker.log" 2>&1 &
worker_pid=$!
echo "run: worker pid $worker_pid, log $STATE/worker.log"
for _ in $(seq 1 240); do
  curl -fsS "http://127.0.0.1:$FIN_WEB_PORT/ready" >/dev/null 2>&1 && break
  kill -0 "$worker_pid" 2>/dev/null || { tail -n 40 "$STATE/worker.log"; exit 1; }
  sleep 0.5
done

base="http://127.0.0.1:$FIN_WEB_PORT"
cat <<MSG

FIN is running.
  status page      $base/?key=$FIN_API_KEY
  health / ready   $base/health   $base/ready
  metrics          $base/metrics
  budget check     $base/api/v1/fin/budgets/department/ENG-001?category=SALARY&period=2024-Q1
  vendor status    $base/api/v1/fin/ap/vendors/VEN-001/payment-status
  credit status    $base/api/v1/fin/ar/customers/CUS-001/credit-status
  trial balance    $base/api/v1/fin/ledger/trial-balance?period=2024-03
  prometheus       $prometheus_url
  schema registry  $FIN_SCHEMA_REGISTRY_URL
  kafka            $FIN_KAFKA_BOOTSTRAP
  read key         $FIN_API_KEY   (X-API-Key header; every endpoint but /health and /ready)
  write key        $FIN_API_WRITE_KEY   (commands; also reads)
Try:
  curl -H 'X-API-Key: $FIN_API_KEY' '$base/api/v1/fin/ar/customers/CUS-001/credit-status'
  curl -X PUT -H 'X-API-Key: $FIN_API_WRITE_KEY' -H 'Content-Type: application/json' \\
       -d '{"credit_limit": "60000.00"}' '$base/api/v1/fin/ar/customers/CUS-001/credit-limit'
Publishing demo traffic at $RATE events/s. Ctrl-C stops everything.

MSG
$PY app.py produce --demo --rate "$RATE" &
producer_pid=$!
wait "$producer_pid"
