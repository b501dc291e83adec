"""Ember's user ingestion DAG (the original stack's `user_automation`).

Asks the ember-ingest service for a batch of users (POST /ingest), then polls
GET /batches/{id} until every staged user has been produced to Kafka. Only the
standard library's urllib is used, so the DAG needs nothing beyond Airflow.

Environment (all optional):
  EMBER_INGEST_URL                 service base URL (default http://127.0.0.1:8090)
  EMBER_INGEST_SCHEDULE            cron or preset (default @daily; "none" = manual only)
  EMBER_INGEST_COUNT               users per run (default 100)
  EMBER_INGEST_SOURCE              api | generate (default api)
  EMBER_INGEST_SEED                generator seed (generate only)
  EMBER_INGEST_RETRY_DELAY_SECS    delay between task retries (default 30)
  EMBER_INGEST_WAIT_TIMEOUT_SECS   how long to wait for the batch (default 600)
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise ValueError(f"{name}={raw!r} is not an integer") from e


def _schedule() -> str | None:
    raw = os.environ.get("EMBER_INGEST_SCHEDULE", "@daily").strip()
    return None if raw.lower() in ("", "none") else raw


def _base_url() -> str:
    return os.environ.get("EMBER_INGEST_URL", "http://127.0.0.1:8090").rstrip("/")


def _call(method: str, path: str, body: dict | None = None, timeout: float = 120.0) -> tuple[int, dict]:
    """One JSON request; returns (status, parsed body). HTTP errors carry a
    JSON body from the service too, so they are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        _base_url() + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = {"error": raw[:300].decode(errors="replace")}
        return e.code, parsed


RETRY_DELAY = timedelta(seconds=_env_int("EMBER_INGEST_RETRY_DELAY_SECS", 30))


@dag(
    dag_id="user_automation",
    schedule=_schedule(),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    default_args={"owner": "ember", "retries": 3, "retry_delay": RETRY_DELAY},
    tags=["ember", "ingest"],
    doc_md=__doc__,
)
def user_automation():
    @task(retries=3, retry_delay=RETRY_DELAY)
    def start_batch() -> str:
        body = {
            "count": _env_int("EMBER_INGEST_COUNT", 100),
            "source": os.environ.get("EMBER_INGEST_SOURCE", "api"),
        }
        seed = os.environ.get("EMBER_INGEST_SEED", "").strip()
        if seed:
            body["seed"] = int(seed)
        status, resp = _call("POST", "/ingest", body)
        # 502: the user API failed after the service's own retries; what it
        # staged is still produced, and the task retry asks for a new batch.
        if status != 200:
            raise RuntimeError(f"POST /ingest returned {status}: {resp}")
        print(f"batch {resp['batch_id']}: fetched {resp['fetched']}, staged {resp['staged']}")
        return resp["batch_id"]

    @task(retries=3, retry_delay=RETRY_DELAY)
    def wait_produced(batch_id: str) -> dict:
        deadline = time.monotonic() + _env_int("EMBER_INGEST_WAIT_TIMEOUT_SECS", 600)
        delay = 1.0
        while True:
            status, resp = _call("GET", f"/batches/{batch_id}", timeout=30)
            if status == 200:
                state = resp.get("state")
                print(f"batch {batch_id}: {state}, staged {resp.get('staged')}, produced {resp.get('produced')}")
                if state == "produced":
                    return resp
                if state == "failed":
                    raise RuntimeError(f"batch {batch_id} failed: {resp.get('error')}")
            elif status != 503:  # 503: Postgres briefly away; keep polling
                raise RuntimeError(f"GET /batches/{batch_id} returned {status}: {resp}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not produced in time (last: {resp})")
            time.sleep(delay)
            delay = min(delay * 2, 15.0)

    wait_produced(start_batch())


user_automation()
