#!/usr/bin/env bash
# End-to-end check of compose/dags/user_automation.py against a real
# `ember-ingest serve`, Postgres and tansu (from scripts/stack up):
#   1. venv with Airflow at $HOME/.cache/ember/airflow-venv (created once),
#   2. a throwaway AIRFLOW_HOME (sqlite), `airflow db migrate`,
#   3. `ember-ingest serve` on a free port, own staging table and topic,
#   4. `airflow dags test user_automation` with EMBER_INGEST_URL pointing at it,
#   5. `ember-ingest check`: every staged row produced and found on the topic.
# Exit 0 on success, 77 if the Airflow venv cannot be created (skip), else 1.
#
# Env: EMBER_KAFKA, EMBER_PG, EMBER_TANSU (defaults as scripts/stack),
#      EMBER_INGEST_BIN (default: $CARGO_TARGET_DIR/debug/ember-ingest, built
#      if missing), AIRFLOW_TEST_COUNT (default 50), AIRFLOW_TEST_KEEP=1 keeps
#      the work dir (Airflow home, logs) for debugging.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$HOME/.cache/ember"
VENV="$CACHE/airflow-venv"
AIRFLOW_VERSION=3.3.2
COUNT="${AIRFLOW_TEST_COUNT:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
EMBER_KAFKA="${EMBER_KAFKA:-127.0.0.1:9092}"
EMBER_PG="${EMBER_PG:-postgres://postgres@127.0.0.1:55432/ember}"
EMBER_TANSU="${EMBER_TANSU:-$CACHE/tools/bin/tansu}"
BIN="${EMBER_INGEST_BIN:-$CARGO_TARGET_DIR/debug/ember-ingest}"

log() { printf '[airflow-test] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# --- 1. Airflow venv ------------------------------------------------------------
if [ ! -x "$VENV/bin/airflow" ]; then
  log "creating $VENV with apache-airflow==$AIRFLOW_VERSION"
  mkdir -p "$CACHE"
  if ! python3 -m venv "$VENV" >&2 \
     || ! "$VENV/bin/pip" install -q "apache-airflow==$AIRFLOW_VERSION" >&2; then
    log "SKIP: cannot create the Airflow venv at $VENV"
    rm -rf "$VENV"
    exit 77
  fi
fi

# --- 2. ember-ingest binary ------------------------------------------------------
if [ ! -x "$BIN" ]; then
  log "building ember-ingest"
  (cd "$ROOT" && cargo build -q -p ember-ingest) || fail "cargo build -p ember-ingest"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ember-airflow.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "${AIRFLOW_TEST_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- 3. service on a free port, own topic and staging table ----------------------
SUFFIX="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
TOPIC="ingest_airflow_$SUFFIX"
TABLE="ingest_airflow_$SUFFIX"
"$EMBER_TANSU" topic create "$TOPIC" --partitions 4 --broker "tcp://$EMBER_KAFKA" >/dev/null 2>&1 \
  || fail "cannot create topic $TOPIC on $EMBER_KAFKA (is scripts/stack up running?)"

"$BIN" serve --listen 127.0.0.1:0 --topic "$TOPIC" --staging-table "$TABLE" \
  --brokers "$EMBER_KAFKA" --pg "$EMBER_PG" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVER_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^listening on //p' "$WORK/serve.out" | head -1)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/serve.log" >&2; fail "ember-ingest serve exited"; }
  sleep 0.1
done
[ -n "$URL" ] || fail "ember-ingest serve did not report its address"
log "service at $URL (topic $TOPIC, table $TABLE)"

# --- 4. Airflow -------------------------------------------------------------------
export AIRFLOW_HOME="$WORK/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/compose/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=WARNING
mkdir -p "$AIRFLOW_HOME"
"$VENV/bin/airflow" db migrate >"$WORK/migrate.log" 2>&1 \
  || { tail -30 "$WORK/migrate.log" >&2; fail "airflow db migrate"; }

export EMBER_INGEST_URL="$URL"
export EMBER_INGEST_SOURCE=generate   # nothing reaches the internet
export EMBER_INGEST_COUNT="$COUNT"
export EMBER_INGEST_RETRY_DELAY_SECS=2
export EMBER_INGEST_WAIT_TIMEOUT_SECS=120
"$VENV/bin/airflow" dags test user_automation >"$WORK/dags-test.log" 2>&1 \
  || { tail -40 "$WORK/dags-test.log" >&2; fail "airflow dags test user_automation"; }
# `dags test` can exit 0 with failed tasks: read the run's final state back.
RUNS="$("$VENV/bin/airflow" dags list-runs user_automation -o json 2>/dev/null | grep '^\[' || true)"
printf '%s' "$RUNS" | "$VENV/bin/python" -c '
import json, sys
runs = json.load(sys.stdin)
sys.exit(0 if runs and all(r["state"] == "success" for r in runs) else 1)' \
  || { tail -40 "$WORK/dags-test.log" >&2; fail "the DAG run did not succeed: $RUNS"; }

# --- 5. rows staged in Postgres and the messages on the topic ---------------------
REPORT="$("$BIN" check --topic "$TOPIC" --staging-table "$TABLE" --brokers "$EMBER_KAFKA" --pg "$EMBER_PG")" \
  || { printf '%s\n' "$REPORT" >&2; fail "ember-ingest check"; }
printf '%s\n' "$REPORT"
case "$REPORT" in
  *"\"staged\":$COUNT,\"produced\":$COUNT,\"verified_on_topic\":$COUNT,"*) ;;
  *) fail "expected $COUNT rows staged, produced and on the topic: $REPORT" ;;
esac
# Postgres tables are ours to drop (topics are never deleted: see scripts/stack).
if command -v psql >/dev/null; then
  psql "$EMBER_PG" -qc "DROP TABLE IF EXISTS $TABLE, ${TABLE}_batches, ${TABLE}_queue, ${TABLE}_pending, ${TABLE}_produced;" >/dev/null 2>&1 || true
fi
log "OK: $COUNT users staged in $TABLE and on $TOPIC via the DAG"
