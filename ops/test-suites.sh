#!/usr/bin/env bash
# Run the main suite and the fault suite side by side, then report both.
#
# The fault suite spends most of its time waiting (kill -9, session timeouts, broker and registry
# restarts) on its own private broker and registry, so running it beside the main suite costs the
# main suite little CPU and saves most of the fault suite's wall time. Each suite keeps its own
# output (the fault suite's is printed after the main suite's, whole); the script fails if either
# fails. FIN_TEST_SERIAL=1 runs them one after the other, as before.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
pytest_args=(-q -p no:cacheprovider)
if [ "${FIN_TEST_SERIAL:-0}" = 1 ]; then
  "$PY" -m pytest "${pytest_args[@]}" || exit $?
  exec "$PY" -m pytest "${pytest_args[@]}" -m faults tests/faults
fi
mkdir -p .state
faults_log=.state/fault-suite.log
started=$(date +%s)
"$PY" -m pytest "${pytest_args[@]}" -m faults tests/faults >"$faults_log" 2>&1 &
faults_pid=$!
trap 'kill "$faults_pid" 2>/dev/null' INT TERM
"$PY" -m pytest "${pytest_args[@]}"
main_rc=$?
echo "test-suites: main suite finished (exit $main_rc) after $(( $(date +%s) - started ))s; waiting for the fault suite"
wait "$faults_pid"
faults_rc=$?
echo "test-suites: fault suite finished (exit $faults_rc) after $(( $(date +%s) - started ))s; its output ($faults_log):"
cat "$faults_log"
if [ "$main_rc" -ne 0 ] || [ "$faults_rc" -ne 0 ]; then
  echo "test-suites: FAILED (main suite exit $main_rc, fault suite exit $faults_rc)" >&2
  exit 1
fi
