"""PySpark side of Ember's benchmarks: the same two scenarios, run by Spark.

Modes
-----
``kafka``  The reference job (jobs/users_created.toml) as a PySpark Structured
           Streaming query: JSON users from a Kafka topic -> from_json -> the 12
           columns -> CQL table via foreachBatch/foreachPartition with the
           Python cassandra-driver. Stops once --count rows went through and
           checks ``SELECT COUNT(*)`` on the table.

``rate``   The engine scenario: Spark's ``rate`` source -> a from_json
           projection -> ``noop`` sink (inside foreachBatch, so the whole
           transform runs and the rows are thrown away). Measures rows/s over a
           window after a warm-up. With --rows-per-batch N > 0 it reads
           Spark's ``rate-micro-batch`` source instead: exactly N rows per
           micro-batch whatever the time, batches back to back, so rows/s is
           the engine's capacity rather than the asked rate.

No Kafka connector jar is available, so ``kafka`` mode reads the topic with a
Python streaming data source ("pykafka", see KafkaDataSource) built on
confluent-kafka (librdkafka).

Both modes run Spark as ``local[2]`` with the UI off, log level WARN and 4
shuffle partitions. Progress goes to stderr; the last line of stdout is one
JSON object with the figures.

Setup (once)::

    ~/.cache/ember/pyspark/bin/pip install -r bench/spark/requirements.txt

Run (from the repo root, with the broker and the CQL store up)::

    scripts/stack topic spark_users 4
    ~/.cache/ember/target/debug/ember-ingest load --count 100000 \\
        --topic spark_users --brokers 127.0.0.1:9092 --seed 1
    ~/.cache/ember/pyspark/bin/python bench/spark/spark_bench.py kafka \\
        --topic spark_users --count 100000 --keyspace spark_bench

    ~/.cache/ember/pyspark/bin/python bench/spark/spark_bench.py rate \\
        --rows-per-second 200000 --partitions 2 --seconds 30 --warmup 10
    ~/.cache/ember/pyspark/bin/python bench/spark/spark_bench.py rate \\
        --rows-per-batch 1000000 --partitions 2 --seconds 20 --warmup 10

Note for ``kafka``: --count must be the number of records in the topic (the
query reads from the earliest offsets); the table is upserted by id, so
re-running on the same keyspace with the same ingest seed keeps the COUNT(*)
check valid. The source's consumers use fetch.wait.max.ms=10, as Ember's do
(change with --kafka-option KEY=VALUE). Exit status 1 if the query fails,
--timeout passes, or COUNT(*) differs from --count.

Output fields
-------------
kafka: rows, seconds (query start -> end of the batch that reached --count,
       from the progress timestamps), rows_per_sec, batches, table_rows.
rate:  source ("rate" or "rate-micro-batch"), rows_per_batch (0 for "rate"),
       rows (of the batches that completed in the window), batches,
       window_seconds, mean_batch_ms.
       "rate": target_rows_per_sec, rows_per_sec (rows / window length),
       rows_per_sec_span (the same without the window's edge error).
       "rate-micro-batch": rows_per_sec is the span figure: rows of the
       batches completed after the first in-window completion / time from
       that completion to the last in-window one (span_rows, span_seconds).
       If fewer than 2 batches complete in the window it is extended until
       3 have completed since the warm-up ended (5 minutes at most;
       window_extended, window_seconds then the actual length).
both:  driver_peak_rss_mb (the JVM's VmHWM), driver_python_peak_rss_mb (this
       script), python_workers_peak_rss_mb / _pss_mb (the JVM's Python
       children, summed at the sampled peak; 0 when the plan has no Python).
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import types
import uuid
from datetime import datetime

# The reference job's value schema and output columns (jobs/users_created.toml).
USER_SCHEMA_DDL = (
    "id STRING, first_name STRING, last_name STRING, gender STRING, address STRING, "
    "post_code STRING, email STRING, username STRING, dob STRING, registered_date STRING, "
    "phone STRING, picture STRING"
)
USER_COLUMNS = [
    "id", "first_name", "last_name", "gender", "address", "post_code", "email",
    "username", "dob", "registered_date", "phone", "picture",
]
# The reference job's ddl, with the keyspace and table as parameters.
TABLE_DDL = """
CREATE TABLE IF NOT EXISTS {keyspace}.{table} (
    id uuid PRIMARY KEY, first_name text, last_name text, gender text,
    address text, post_code text, email text, username text, dob text,
    registered_date text, phone text, picture text)
"""

# The engine scenario's transform. Ember runs the same statement in its SQL
# dialect; `timestamp` is back-quoted so Spark's parser takes it as a column.
RATE_SQL = """
SELECT j.id AS id, `timestamp` AS ts, j.name AS name, j.age AS age
FROM (
    SELECT `timestamp`,
           from_json(concat('{"id":', CAST(value AS STRING),
                            ',"name":"user-', CAST(value AS STRING),
                            '","age":', CAST(value % 100 AS STRING), '}'),
                     'id BIGINT, name STRING, age INT') AS j
    FROM source
) t
"""

# librdkafka settings for the source's consumers beyond the defaults: the same
# as Ember's range-read consumers (jobs/src/kafka/consumer.rs). Without it a
# re-assigned consumer waits out the in-flight long-poll fetch (500 ms by
# default) at the end of the previous range: ~0.8 s per task on tansu.
DEFAULT_KAFKA_OPTIONS = {"fetch.wait.max.ms": "10"}

# Messages per consume() call and per Arrow batch handed back to Spark (the
# same as spark.sql.execution.arrow.maxRecordsPerBatch's default).
KAFKA_CHUNK = 10000


def log(msg):
    print(f"[spark_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Per-Python-worker cache
# --------------------------------------------------------------------------

def _worker_state():
    """A dict that lives as long as the Python worker process.

    Functions and classes defined in this script belong to ``__main__`` on the
    driver, so cloudpickle ships them *by value*: every task unpickles fresh
    copies of their globals, and a plain module-level cache would be rebuilt
    per task. A module registered in ``sys.modules`` survives across tasks in
    a reused worker (spark.python.worker.reuse, on by default), so the CQL
    session and the Kafka consumer are made once per worker, as the Spark
    Kafka connector's consumer pool and a connector's session cache would.
    """
    name = "_spark_bench_worker_state"
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        mod.state = {}
        sys.modules[name] = mod
    return mod.state


# --------------------------------------------------------------------------
# "pykafka": a Python streaming data source over confluent-kafka
# --------------------------------------------------------------------------

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition  # noqa: E402
from pyspark.sql.types import (  # noqa: E402
    BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType,
)

# Spark's Kafka source schema.
KAFKA_SOURCE_SCHEMA = StructType([
    StructField("key", BinaryType()),
    StructField("value", BinaryType()),
    StructField("topic", StringType()),
    StructField("partition", IntegerType()),
    StructField("offset", LongType()),
    StructField("timestamp", TimestampType()),
    StructField("timestampType", IntegerType()),
])


def _consumer_conf(bootstrap, group_id, extra=None):
    # Partitions are assign()ed explicitly (no group membership) and offsets
    # live in Spark's checkpoint, so nothing is committed or stored in Kafka.
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    conf.update(extra or {})
    return conf


def rate_limit(start, latest, limit):
    """Spark's KafkaMicroBatchStream.rateLimit: split `limit` offsets across
    partitions in proportion to their backlog, never starving a small one."""
    sizes = {p: end - start[p] for p, end in latest.items() if p in start and end - start[p] > 0}
    total = float(sum(sizes.values()))
    if total < 1:
        return dict(latest)
    out = {}
    for p, end in latest.items():
        if p not in sizes:
            out[p] = end
            continue
        prorate = limit * (sizes[p] / total)
        step = int(-(-prorate // 1)) if prorate < 1 else int(prorate)  # ceil below 1, else floor
        out[p] = min(end, start[p] + step)
    return out


class KafkaPartition(InputPartition):
    """One Kafka partition's offset range [start, end) for one micro-batch."""

    def __init__(self, topic, partition, start, end):
        self.topic = topic
        self.partition = partition
        self.start = start
        self.end = end


class KafkaStreamReader(DataSourceStreamReader):
    """Offsets are {"<partition>": next_offset}.

    PySpark 4.1's DataSourceStreamReader has no admission control
    (latestOffset() takes no start offset or ReadLimit), so maxOffsetsPerTrigger
    is applied here, against the end offset this reader last handed to Spark:
    Spark plans every batch from the previous batch's end, so that is the next
    batch's start.
    """

    def __init__(self, options):
        self.bootstrap = options.get("kafka.bootstrap.servers", "127.0.0.1:9092")
        self.topic = options["subscribe"]
        self.group_id = options.get("kafka.group.id", "spark-bench")
        # Other kafka.* options go to librdkafka without the prefix (as in
        # Spark's Kafka source and Ember's job spec).
        self.kafka_extra = {k[len("kafka."):]: v for k, v in options.items()
                            if k.lower().startswith("kafka.")
                            and k.lower() not in ("kafka.bootstrap.servers", "kafka.group.id")}
        limit = int(options.get("maxOffsetsPerTrigger", "0"))
        self.max_offsets = limit if limit > 0 else None
        # "fresh": the checkpoint has no offsets yet, so the first batch starts
        # at initialOffset(). On a restart Spark resumes from the checkpoint
        # without telling a Python source, so the first batch is left uncapped
        # rather than risk an end offset behind the checkpointed start.
        self.fresh = options.get("fresh", "true") == "true"
        # Give up on a partition if no record arrives for this long.
        self.stall_timeout = float(options.get("stallTimeoutSeconds", "120"))
        self._meta = None    # metadata consumer, made lazily where offsets are planned
        self._last_end = None

    def __getstate__(self):
        # The reader is pickled into the read function shipped to executors;
        # the librdkafka handle stays behind.
        state = dict(self.__dict__)
        state["_meta"] = None
        return state

    # ---- planning side (runs in Spark's Python streaming-source runner) ----

    def _watermarks(self):
        from confluent_kafka import KafkaException, TopicPartition, Consumer
        if self._meta is None:
            self._meta = Consumer(_consumer_conf(
                self.bootstrap, self.group_id + "-meta", self.kafka_extra))
        md = self._meta.list_topics(self.topic, timeout=30)
        tmd = md.topics.get(self.topic)
        if tmd is None or tmd.error is not None:
            raise KafkaException(tmd.error if tmd is not None else f"no topic {self.topic}")
        marks = {}
        for p in sorted(tmd.partitions):
            lo, hi = self._meta.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=30, cached=False)
            marks[str(p)] = (lo, hi)
        return marks

    def initialOffset(self):
        # startingOffsets = earliest
        return {p: lo for p, (lo, _) in self._watermarks().items()}

    def latestOffset(self):
        marks = self._watermarks()
        latest = {p: hi for p, (_, hi) in marks.items()}
        if self._last_end is None:
            if not self.fresh:
                self._last_end = latest
                return latest
            # Spark asks for latestOffset() before initialOffset() on a fresh
            # query; both mean the low watermarks here.
            self._last_end = {p: lo for p, (lo, _) in marks.items()}
        if self.max_offsets is None:
            end = latest
        else:
            start = dict(self._last_end)
            for p, (lo, _) in marks.items():   # partitions added since: from earliest
                start.setdefault(p, lo)
            end = rate_limit(start, latest, self.max_offsets)
        self._last_end = end
        return end

    def partitions(self, start, end):
        parts = []
        for p, e in sorted(end.items(), key=lambda kv: int(kv[0])):
            s = start.get(p, 0)
            if e > s:
                parts.append(KafkaPartition(self.topic, int(p), s, e))
        return parts

    def commit(self, end):
        # Offsets are tracked by Spark's checkpoint only.
        pass

    def stop(self):
        if self._meta is not None:
            self._meta.close()
            self._meta = None

    # ---- executor side (runs in a Python worker, once per partition per batch) ----

    def read(self, partition):
        import pyarrow as pa
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        state = _worker_state()
        key = ("kafka", self.bootstrap, self.group_id, tuple(sorted(self.kafka_extra.items())))
        consumer = state.get(key)
        if consumer is None:
            # auto.offset.reset=error: an out-of-range start fails the batch,
            # like Spark's failOnDataLoss=true, instead of silently skipping.
            consumer = Consumer(_consumer_conf(
                self.bootstrap, self.group_id,
                dict({"auto.offset.reset": "error"}, **self.kafka_extra)))
            state[key] = consumer

        topic, pnum, end = partition.topic, partition.partition, partition.end
        consumer.assign([TopicPartition(topic, pnum, partition.start)])
        nxt = partition.start
        pa_ts = pa.timestamp("us", tz="UTC")
        keys, values, offsets, stamps, stypes = [], [], [], [], []

        def batch():
            n = len(offsets)
            rb = pa.RecordBatch.from_arrays([
                pa.array(keys, pa.binary()),
                pa.array(values, pa.binary()),
                pa.array([topic] * n, pa.string()),
                pa.array([pnum] * n, pa.int32()),
                pa.array(offsets, pa.int64()),
                pa.array(stamps, pa_ts),
                pa.array(stypes, pa.int32()),
            ], names=KAFKA_SOURCE_SCHEMA.fieldNames())
            keys.clear(); values.clear(); offsets.clear(); stamps.clear(); stypes.clear()
            return rb

        last_progress = time.monotonic()
        try:
            while nxt < end:
                msgs = consumer.consume(num_messages=min(KAFKA_CHUNK, end - nxt), timeout=1.0)
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(err)
                    o = m.offset()
                    # A cached consumer may still hand out records fetched for
                    # an earlier assignment: keep only this range.
                    if m.partition() != pnum or m.topic() != topic or o < nxt or o >= end:
                        continue
                    ttype, tms = m.timestamp()
                    keys.append(m.key())
                    values.append(m.value())
                    offsets.append(o)
                    stamps.append(tms * 1000 if tms is not None and tms >= 0 else None)
                    # librdkafka: 0 none, 1 create, 2 log-append; Kafka/Spark: -1, 0, 1
                    stypes.append(ttype - 1)
                    nxt = o + 1
                if msgs:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > self.stall_timeout:
                    raise RuntimeError(
                        f"{topic}[{pnum}]: no record for {self.stall_timeout:.0f}s at offset "
                        f"{nxt}, expected up to {end}")
                if len(offsets) >= KAFKA_CHUNK:
                    yield batch()
            if offsets:
                yield batch()
        except BaseException:
            # Drop the consumer so a retried task starts clean.
            state.pop(key, None)
            consumer.close()
            raise


class KafkaDataSource(DataSource):
    """spark.readStream.format("pykafka").option("subscribe", topic)...

    Options (Spark's Kafka source names): kafka.bootstrap.servers, subscribe
    (one topic), maxOffsetsPerTrigger, kafka.<librdkafka setting>; plus
    kafka.group.id, fresh, stallTimeoutSeconds. Always starts from the
    earliest offsets.
    """

    @classmethod
    def name(cls):
        return "pykafka"

    def schema(self):
        return KAFKA_SOURCE_SCHEMA

    def streamReader(self, schema):
        return KafkaStreamReader(self.options)


# --------------------------------------------------------------------------
# CQL sink (foreachBatch -> foreachPartition -> cassandra-driver)
# --------------------------------------------------------------------------

def _cql_cluster(host, port, request_timeout=60.0):
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(),
                               request_timeout=request_timeout)
    return Cluster([host], port=port, protocol_version=4,
                   execution_profiles={EXEC_PROFILE_DEFAULT: profile})


def make_partition_writer(host, port, keyspace, table, concurrency=256):
    insert = (f"INSERT INTO {keyspace}.{table} ({', '.join(USER_COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(USER_COLUMNS))})")

    def write_partition(rows):
        from cassandra.concurrent import execute_concurrent_with_args

        state = _worker_state()
        skey = ("cql", host, port)
        session = state.get(skey)
        if session is None:
            session = _cql_cluster(host, port).connect()
            state[skey] = session
        pkey = ("prepared", host, port, insert)
        stmt = state.get(pkey)
        if stmt is None:
            stmt = session.prepare(insert)
            state[pkey] = stmt

        params = [(uuid.UUID(r[0]),) + tuple(r[1:]) for r in rows]
        if params:
            # Raises on the first failed write, which fails the task and so the batch.
            execute_concurrent_with_args(session, stmt, params, concurrency=concurrency,
                                         raise_on_first_error=True)

    return write_partition


# --------------------------------------------------------------------------
# Spark session, progress and memory
# --------------------------------------------------------------------------

def make_spark(app_name):
    # Python workers must run this venv's interpreter (it has the packages).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder
             .master("local[2]")
             .appName(app_name)
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")   # keep stderr readable
             .config("spark.sql.shuffle.partitions", "4")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    return spark


def jvm_pid(spark):
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def proc_status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def parse_ts(s):
    # Progress timestamps look like 2025-11-25T17:40:01.123Z (UTC).
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class Monitor:
    """Polls a query's progress (deduplicated by batchId) and samples memory."""

    def __init__(self, query, jvm):
        self.query = query
        self.jvm = jvm
        self.batches = {}   # batchId -> (start_s, end_s, numInputRows)
        self.py_peak_rss = 0
        self.py_peak_pss = 0
        try:
            import psutil
            self._psutil = psutil
            self._jvm_proc = psutil.Process(jvm)
        except Exception:   # psutil missing: no Python-worker figures
            self._psutil = None

    def poll(self):
        for p in self.query.recentProgress:
            bid = p.batchId
            rows = p.numInputRows
            # Idle-query progress reports reuse the next batchId with 0 rows;
            # keep the entry that carries the batch's rows.
            if bid in self.batches and self.batches[bid][2] >= rows:
                continue
            start = parse_ts(p.timestamp)
            dur_ms = p.durationMs.get("triggerExecution") or p.batchDuration or 0
            end = start + dur_ms / 1000.0
            new = bid not in self.batches
            self.batches[bid] = (start, end, rows)
            if new and rows:
                d = p.durationMs
                log(f"batch {bid}: {rows} rows in {(end - start) * 1000:.0f} ms "
                    f"(latestOffset {d.get('latestOffset', 0)}, "
                    f"queryPlanning {d.get('queryPlanning', 0)}, "
                    f"addBatch {d.get('addBatch', 0)} ms; total {self.total_rows()})")
        self._sample_memory()

    def _sample_memory(self):
        if self._psutil is None:
            return
        rss = pss = 0
        try:
            kids = self._jvm_proc.children(recursive=True)
        except self._psutil.Error:
            return
        for k in kids:
            try:
                if not k.name().startswith("python"):
                    continue
                mi = k.memory_full_info()
                rss += mi.rss
                pss += getattr(mi, "pss", mi.rss)
            except self._psutil.Error:
                continue
        self.py_peak_rss = max(self.py_peak_rss, rss)
        self.py_peak_pss = max(self.py_peak_pss, pss)

    def total_rows(self):
        return sum(b[2] for b in self.batches.values())

    def check_alive(self):
        if not self.query.isActive:
            exc = self.query.exception()
            raise RuntimeError(f"query stopped: {exc}")

    def memory_report(self):
        out = {"driver_peak_rss_mb": round((proc_status_kb(self.jvm, "VmHWM") or 0) / 1024, 1),
               "driver_python_peak_rss_mb": round(
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        if self._psutil is not None:
            # Sum over the JVM's Python children (daemon, workers, source
            # planner) at the sampled peak. RSS counts pages shared by the
            # forked workers once per process; PSS splits them.
            out["python_workers_peak_rss_mb"] = round(self.py_peak_rss / 2**20, 1)
            out["python_workers_peak_pss_mb"] = round(self.py_peak_pss / 2**20, 1)
        return out


def checkpoint_dir(arg, label):
    if arg:
        return arg, False
    return tempfile.mkdtemp(prefix=f"spark_bench_{label}_"), True


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------

def run_kafka(args):
    # Keyspace and table first, from the driver (the reference job's ddl).
    cluster = _cql_cluster(args.cql_host, args.cql_port, request_timeout=300)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {args.keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(TABLE_DDL.format(keyspace=args.keyspace, table=args.table))

    ckpt, ckpt_tmp = checkpoint_dir(args.checkpoint, "kafka")
    offsets_dir = os.path.join(ckpt, "offsets")
    fresh = not (os.path.isdir(offsets_dir) and os.listdir(offsets_dir))

    kafka_opts = dict(DEFAULT_KAFKA_OPTIONS)
    for kv in args.kafka_option:
        k, _, v = kv.partition("=")
        kafka_opts[k] = v

    spark = make_spark("spark_bench_kafka")
    spark.dataSource.register(KafkaDataSource)
    jvm = jvm_pid(spark)

    source = (spark.readStream.format("pykafka")
              .option("kafka.bootstrap.servers", args.bootstrap)
              .option("subscribe", args.topic)
              .option("maxOffsetsPerTrigger", str(args.max_offsets_per_trigger))
              .option("fresh", "true" if fresh else "false")
              .options(**{f"kafka.{k}": v for k, v in kafka_opts.items()})
              .load())
    users = (source
             .selectExpr(f"from_json(CAST(value AS STRING), '{USER_SCHEMA_DDL}') AS data")
             .selectExpr(*[f"data.{c} AS {c}" for c in USER_COLUMNS]))

    writer = make_partition_writer(args.cql_host, args.cql_port, args.keyspace, args.table)

    def process_batch(batch_df, batch_id):
        batch_df.foreachPartition(writer)

    log(f"kafka: topic {args.topic} -> {args.keyspace}.{args.table}, "
        f"{args.count} rows expected, checkpoint {ckpt}")
    t0 = time.time()
    query = (users.writeStream
             .foreachBatch(process_batch)
             .option("checkpointLocation", ckpt)
             .start())
    mon = Monitor(query, jvm)
    error = None
    try:
        deadline = t0 + args.timeout
        while True:
            mon.poll()
            if mon.total_rows() >= args.count:
                break
            mon.check_alive()
            if time.time() > deadline:
                raise TimeoutError(f"{mon.total_rows()} of {args.count} rows after "
                                   f"{args.timeout}s")
            time.sleep(0.2)
    except Exception as e:   # report what we have, then fail
        error = str(e)
        log(f"error: {error}")
    finally:
        mon.poll()
        mem = mon.memory_report()   # before the JVM goes away
        query.stop()

    data_batches = {b: v for b, v in mon.batches.items() if v[2] > 0}
    rows = mon.total_rows()
    t_end = max((v[1] for v in data_batches.values()), default=time.time())
    seconds = t_end - t0
    result = {"mode": "kafka", "rows": rows, "seconds": round(seconds, 3),
              "rows_per_sec": round(rows / seconds, 1) if seconds > 0 else None,
              "batches": len(data_batches)}
    result.update(mem)

    table_rows = session.execute(
        f"SELECT COUNT(*) FROM {args.keyspace}.{args.table}").one()[0]
    result["table_rows"] = table_rows
    if args.drop_keyspace:
        session.execute(f"DROP KEYSPACE IF EXISTS {args.keyspace}")
    cluster.shutdown()
    spark.stop()
    if ckpt_tmp:
        shutil.rmtree(ckpt, ignore_errors=True)

    if error is None and table_rows != args.count:
        error = f"table has {table_rows} rows, expected {args.count}"
    if error is not None:
        result["error"] = error
    print(json.dumps(result), flush=True)
    return 0 if error is None else 1


# How long the rate-micro-batch window may be extended waiting for batches.
RATE_EXTEND_SECONDS = 300


def run_rate(args):
    ckpt, ckpt_tmp = checkpoint_dir(args.checkpoint, "rate")
    spark = make_spark("spark_bench_rate")
    jvm = jvm_pid(spark)

    micro = args.rows_per_batch > 0
    if micro:
        # Exactly rowsPerBatch rows per micro-batch, whatever the time; with
        # the default trigger the next batch starts as soon as one ends.
        # (startTimestamp / advanceMillisPerBatch only set the `timestamp`
        # column's values: defaults.)
        reader = (spark.readStream.format("rate-micro-batch")
                  .option("rowsPerBatch", args.rows_per_batch))
        source_name = "rate-micro-batch"
    else:
        reader = (spark.readStream.format("rate")
                  .option("rowsPerSecond", args.rows_per_second))
        source_name = "rate"
    (reader.option("numPartitions", args.partitions)
     .load()
     .createOrReplaceTempView("source"))
    out = spark.sql(RATE_SQL)

    def process_batch(batch_df, batch_id):
        # noop runs the whole plan and discards the rows.
        batch_df.write.format("noop").mode("overwrite").save()

    if micro:
        log(f"rate-micro-batch: {args.rows_per_batch} rows per batch on "
            f"{args.partitions} partitions, warm-up {args.warmup}s, window {args.seconds}s")
    else:
        log(f"rate: {args.rows_per_second} rows/s on {args.partitions} partitions, "
            f"warm-up {args.warmup}s, window {args.seconds}s")
    t0 = time.time()
    query = (out.writeStream
             .foreachBatch(process_batch)
             .option("checkpointLocation", ckpt)
             .start())
    mon = Monitor(query, jvm)
    w0, w1 = t0 + args.warmup, t0 + args.warmup + args.seconds
    extended = False

    def completed(lo, hi):
        # Batches with rows that completed in [lo, hi), by the progress timestamps.
        return [v for v in mon.batches.values() if v[2] > 0 and lo <= v[1] < hi]

    error = None
    try:
        while time.time() < w1:
            mon.poll()
            mon.check_alive()
            time.sleep(0.2)
        if micro:
            mon.poll()
            if len(completed(w0, w1)) < 2:
                # Too few completions for a span: wait until 3 batches have
                # completed since the warm-up ended, rather than report a
                # figure from one batch or none.
                extended = True
                log(f"{len(completed(w0, w1))} batch(es) completed in the window; "
                    f"waiting for 3 (up to {RATE_EXTEND_SECONDS}s)")
                deadline = w1 + RATE_EXTEND_SECONDS
                while len(completed(w0, float("inf"))) < 3:
                    if time.time() > deadline:
                        raise TimeoutError(
                            f"only {len(completed(w0, float('inf')))} batch(es) completed "
                            f"{args.seconds + RATE_EXTEND_SECONDS:.0f}s after the warm-up")
                    time.sleep(0.2)
                    mon.poll()
                    mon.check_alive()
                w1 = max(w1, max(v[1] for v in completed(w0, float("inf"))) + 1e-6)
    except Exception as e:
        error = str(e)
        log(f"error: {error}")
    finally:
        mon.poll()
        mem = mon.memory_report()
        query.stop()

    window = sorted(completed(w0, w1), key=lambda v: v[1])
    rows = sum(v[2] for v in window)
    result = {"mode": "rate", "source": source_name,
              "rows_per_batch": args.rows_per_batch if micro else 0}
    span = window[-1][1] - window[0][1] if len(window) >= 2 else 0.0
    # Rows after the first in-window completion over the time from it to the
    # last in-window completion: no error from where the window's edges fall
    # relative to the batches.
    span_rows = sum(v[2] for v in window[1:])
    span_rate = round(span_rows / span, 1) if span > 0 else None
    if micro:
        result.update({"rows_per_sec": span_rate, "rows": rows,
                       "window_seconds": round(w1 - w0, 3), "window_extended": extended,
                       "batches": len(window), "span_rows": span_rows,
                       "span_seconds": round(span, 3)})
        if span_rate is None and error is None:
            error = f"{len(window)} batch(es) completed in the window: no span to measure"
    else:
        result.update({"target_rows_per_sec": args.rows_per_second,
                       "rows_per_sec": round(rows / (w1 - w0), 1), "rows": rows,
                       "window_seconds": args.seconds, "batches": len(window)})
    if window:
        result["mean_batch_ms"] = round(
            1000 * sum(v[1] - v[0] for v in window) / len(window), 1)
    if not micro and span_rate is not None:
        # The rate source hands out whole seconds of rows, so counting whole
        # batches in a fixed window is off by up to one batch.
        result["rows_per_sec_span"] = span_rate
    result.update(mem)
    spark.stop()
    if ckpt_tmp:
        shutil.rmtree(ckpt, ignore_errors=True)
    if error is not None:
        result["error"] = error
    print(json.dumps(result), flush=True)
    return 0 if error is None else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    k = sub.add_parser("kafka", help="the reference job: Kafka JSON users -> CQL table")
    k.add_argument("--bootstrap", default="127.0.0.1:9092")
    k.add_argument("--topic", required=True)
    k.add_argument("--count", type=int, required=True, help="rows expected (records in the topic)")
    k.add_argument("--cql-host", default="127.0.0.1")
    k.add_argument("--cql-port", type=int, default=9042)
    k.add_argument("--keyspace", default="spark_bench")
    k.add_argument("--table", default="created_users")
    k.add_argument("--checkpoint", help="checkpoint dir (default: a fresh temp dir, removed after)")
    k.add_argument("--max-offsets-per-trigger", type=int, default=100000,
                   help="cap per micro-batch, split across partitions by backlog")
    k.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE",
                   help="librdkafka setting for the source's consumers (repeatable); "
                        "default fetch.wait.max.ms=10, as Ember's consumers")
    k.add_argument("--timeout", type=float, default=1800)
    k.add_argument("--drop-keyspace", action="store_true", help="drop the keyspace at the end")

    r = sub.add_parser("rate", help="the engine scenario: rate -> from_json -> noop")
    r.add_argument("--rows-per-second", type=int, default=200000,
                   help="the rate source's rows/s (used when --rows-per-batch is 0)")
    r.add_argument("--rows-per-batch", type=int, default=0,
                   help="N > 0: read the rate-micro-batch source, exactly N rows per "
                        "micro-batch, and report the span rate (capacity); 0 = off")
    r.add_argument("--partitions", type=int, default=2)
    r.add_argument("--seconds", type=float, default=30, help="measurement window")
    r.add_argument("--warmup", type=float, default=10)
    r.add_argument("--checkpoint", help="checkpoint dir (default: a fresh temp dir, removed after)")

    args = ap.parse_args(argv)
    return run_kafka(args) if args.mode == "kafka" else run_rate(args)


if __name__ == "__main__":
    sys.exit(main())
