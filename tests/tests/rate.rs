//! Spark's rate source and noop sink, end to end on the cluster: rows are
//! generated in the executors by the clock, every value arrives exactly
//! once, and the sinks measure latency.

use std::collections::BTreeMap;
use std::time::Duration;

use ember_e2e::*;
use futures::TryStreamExt;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_source_writes_every_value_once() -> anyhow::Result<()> {
    let ks = unique("ks_rate");
    let cluster = Cluster::start(2).await?;
    let spec = engine_spec(
        "rate",
        &ks,
        "format = \"rate\"\nrowsPerSecond = 2000\nnumPartitions = 3",
        "cassandra",
        "processingTime = \"200 milliseconds\"",
    );
    cluster.submit(&spec, false).await?;
    cluster
        .wait_job("rate", 2 * MIN, "6,000 rows out", |d| {
            d.summary.as_ref().is_some_and(|s| s.rows_out >= 6_000)
        })
        .await?;
    let s = cluster.stop("rate").await?;
    assert_eq!(s.state, "stopped");
    assert_eq!((s.rows_in, s.rows_dead), (s.rows_out, 0));
    assert_eq!(s.latency_samples, s.rows_out);

    // The committed ranges say which values exist: value = offset × 3 + partition.
    let batches = commits(&cluster, "rate")?;
    assert!(batches.len() > 3, "{} batches", batches.len());
    let end = assert_contiguous(&batches);
    assert_eq!(end.len(), 3);
    let mut expected: Vec<i64> = end
        .iter()
        .flat_map(|((topic, p), &e)| {
            assert_eq!(topic, "rate");
            (0..e).map(move |o| o * 3 + i64::from(*p))
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(expected.len() as u64, s.rows_out);

    let session = cql_session().await?;
    let rows: Vec<(i64, scylla::value::CqlTimestamp, String, i32)> = session
        .query_iter(format!("SELECT id, ts, name, age FROM {ks}.rate_users"), ())
        .await?
        .rows_stream()?
        .try_collect()
        .await?;
    let mut ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    ids.sort_unstable();
    assert_eq!(
        ids, expected,
        "the table holds exactly the committed values"
    );
    // Timestamps follow the rate: 2,000/s is one value every 0.5 ms.
    let by_id: BTreeMap<i64, i64> = rows.iter().map(|r| (r.0, r.1.0)).collect();
    let t0 = by_id[&0];
    for r in &rows {
        assert_eq!(r.1.0 - t0, r.0 / 2, "timestamp of value {}", r.0);
        assert_eq!(r.2, format!("user-{}", r.0));
        assert_eq!(i64::from(r.3), r.0 % 100);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_source_into_noop_sink_with_available_now() -> anyhow::Result<()> {
    let cluster = Cluster::start(1).await?;
    // availableNow takes what the clock has made by submission, then finishes.
    let spec = engine_spec(
        "noop",
        "",
        "format = \"rate\"\nrowsPerSecond = 50000\nnumPartitions = 2",
        "noop",
        "availableNow = true",
    );
    let submitted = cluster.submit(&spec, false).await?;
    assert_eq!(submitted.sink, "noop");
    let d = cluster
        .wait_job("noop", 2 * MIN, "finished", |d| {
            d.summary.as_ref().is_some_and(|s| s.state == "finished")
        })
        .await?;
    let s = d.summary.unwrap_or_default();
    let end = assert_contiguous(&commits(&cluster, "noop")?);
    let total: i64 = end.values().sum();
    assert!(total > 0, "no rows generated");
    assert_eq!(s.rows_in, total as u64);
    assert_eq!(s.rows_out, s.rows_in);
    assert_eq!(s.latency_samples, s.rows_out);
    assert!(s.latency_p50_ms <= s.latency_p99_ms && s.latency_p99_ms <= s.latency_max_ms);

    // A rate spec with a bad option is refused at submission, by name.
    let e = cluster
        .submit(
            &spec.replace("numPartitions = 2", "numPartitions = 0"),
            false,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("numPartitions"), "{e}");

    // rate-micro-batch: exactly rowsPerBatch rows per batch, whatever the clock.
    let spec = engine_spec(
        "mb",
        "",
        "format = \"rate-micro-batch\"\nrowsPerBatch = 7000\nnumPartitions = 2",
        "noop",
        "",
    );
    cluster.submit(&spec, false).await?;
    cluster
        .wait_job("mb", 2 * MIN, "3 batches", |d| {
            d.summary.as_ref().is_some_and(|s| s.batches >= 3)
        })
        .await?;
    cluster.stop("mb").await?;
    let batches = commits(&cluster, "mb")?;
    assert_contiguous(&batches);
    for b in &batches {
        assert_eq!(b.rows_out, 7_000, "batch {}", b.batch_id);
        let parts: Vec<i64> = b
            .ranges
            .iter()
            .map(|r| r.until_offset - r.from_offset)
            .collect();
        assert_eq!(parts, vec![3_500, 3_500], "batch {}", b.batch_id);
    }
    Ok(())
}
