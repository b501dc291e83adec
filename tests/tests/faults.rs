//! Failures mid-stream: a scheduler killed with -9, an executor lost, the
//! broker and the store stopped. Each run must end with exact counts and a
//! contiguous, non-overlapping batch log.

use std::time::{Duration, Instant};

use ember_e2e::*;

const MIN: Duration = Duration::from_secs(60);

/// Waits until a batch is in flight (offsets written, commit not yet).
async fn wait_mid_batch(cluster: &Cluster, job: &str, after_commits: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + 2 * MIN;
    while Instant::now() < deadline {
        let (o, c) = checkpoint_counts(cluster, job);
        if c >= after_commits && o > c {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("never saw batch {after_commits}+ in flight")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scheduler_killed_mid_batch_resumes_from_its_checkpoint_exactly() -> anyhow::Result<()> {
    let topic = unique("e2e_skill");
    let ks = unique("ks_skill");
    create_topic(&topic, 4)?;
    produce_users(&topic, 20_000, 11).await?;
    let mut cluster = Cluster::start(2).await?;
    let spec = with_max_offsets(&reference_spec("skill", &topic, &ks, "", ""), 2000)?;
    cluster.submit(&spec, false).await?;
    wait_mid_batch(&cluster, "skill", 2).await?;
    cluster.scheduler.kill(); // kill -9
    let (offsets_at_kill, commits_at_kill) = checkpoint_counts(&cluster, "skill");
    assert!(
        offsets_at_kill > commits_at_kill,
        "the kill should land mid-batch"
    );
    cluster.restart_scheduler().await?; // on the same ports and state
    cluster.wait_executors(2).await?;

    let d = cluster
        .wait_job("skill", 4 * MIN, "20,000 rows out", |d| {
            d.summary
                .as_ref()
                .is_some_and(|s| s.rows_out == 20_000 && s.total_lag == 0)
        })
        .await?;
    let s = d.summary.unwrap_or_default();
    assert_eq!((s.rows_in, s.rows_dead), (20_000, 0));
    let log = commits(&cluster, "skill")?;
    let ends = assert_contiguous(&log);
    assert_eq!(ends.values().sum::<i64>(), 20_000);
    assert_eq!(log.len(), 10, "20,000 records at 2,000 per batch");
    // The batch in flight at the kill was re-run with exactly its recorded ranges.
    {
        let id = (offsets_at_kill - 1) as u64;
        let rerun = log
            .iter()
            .find(|b| b.batch_id == id)
            .expect("the in-flight batch was committed after the restart");
        let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(
            cluster
                .home
                .join("scheduler/jobs/skill/offsets")
                .join(id.to_string()),
        )?)?;
        let recorded_ranges: Vec<(i32, i64, i64)> = recorded["ranges"]
            .as_array()
            .expect("ranges")
            .iter()
            .map(|r| {
                (
                    r["partition"].as_i64().unwrap_or(-1) as i32,
                    r["from"].as_i64().unwrap_or(-1),
                    r["until"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let committed: Vec<(i32, i64, i64)> = rerun
            .ranges
            .iter()
            .map(|r| (r.partition, r.from_offset, r.until_offset))
            .collect();
        assert_eq!(recorded_ranges, committed);
        assert!(
            std::fs::read_to_string(&cluster.scheduler.log)?
                .contains(&format!("re-running uncommitted batch {id}"))
        );
    }
    assert_eq!(
        count(&cql_session().await?, &format!("{ks}.created_users")).await?,
        20_000
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn executor_lost_mid_batch_and_a_new_one_joins() -> anyhow::Result<()> {
    let topic = unique("e2e_xkill");
    let ks = unique("ks_xkill");
    create_topic(&topic, 4)?;
    produce_users(&topic, 30_000, 12).await?;
    let mut cluster = Cluster::start(2).await?;
    let spec = with_max_offsets(&reference_spec("xkill", &topic, &ks, "", ""), 2000)?;
    cluster.submit(&spec, false).await?;
    wait_mid_batch(&cluster, "xkill", 2).await?;
    cluster.executors[1].kill();
    let (_, commits_before_third) = checkpoint_counts(&cluster, "xkill");
    cluster.add_executor()?;
    let d = cluster
        .wait_job("xkill", 4 * MIN, "30,000 rows out", |d| {
            d.summary
                .as_ref()
                .is_some_and(|s| s.rows_out == 30_000 && s.total_lag == 0)
        })
        .await?;
    let log = commits(&cluster, "xkill")?;
    assert_eq!(assert_contiguous(&log).values().sum::<i64>(), 30_000);
    // The third executor received tasks of later batches.
    let third = log
        .iter()
        .filter(|b| b.batch_id as usize >= commits_before_third)
        .flat_map(|b| b.executors.iter())
        .any(|e| e.starts_with("exec-2-"));
    assert!(
        third,
        "the new executor ran no task: {:?}",
        log.iter().map(|b| &b.executors).collect::<Vec<_>>()
    );
    assert_eq!(d.summary.unwrap_or_default().rows_dead, 0);
    assert_eq!(
        count(&cql_session().await?, &format!("{ks}.created_users")).await?,
        30_000
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_then_store_outage_is_retried_and_the_count_is_exact() -> anyhow::Result<()> {
    let mut servers = PrivateServers::start().await?;
    let topic = unique("e2e_outage");
    let ks = unique("ks_outage");
    servers.create_topic(&topic, 4)?;
    produce_users_to(&servers.kafka(), &topic, 6_000, 13).await?;
    let cluster = Cluster::start(2).await?;
    // A short poll timeout: a batch in flight when the broker goes fails fast.
    let spec = reference_spec(
        "outage",
        &topic,
        &ks,
        "\n\"kafkaConsumer.pollTimeoutMs\" = 5000",
        "processingTime = \"200 ms\"",
    )
    .replace(&kafka(), &servers.kafka())
    .replace(&cql(), &servers.cql());
    let spec = with_max_offsets(&spec, 1000)?;
    cluster.submit(&spec, false).await?;
    cluster
        .wait_job("outage", 2 * MIN, "first batches", |d| {
            d.summary.as_ref().is_some_and(|s| s.rows_out >= 1_000)
        })
        .await?;

    // The broker goes away for 15 s: the job retries and comes back by itself.
    servers.tansu.take();
    tokio::time::sleep(Duration::from_secs(15)).await;
    servers.start_tansu().await?;
    produce_users_to(&servers.kafka(), &topic, 2_000, 14).await?;
    cluster
        .wait_job("outage", 3 * MIN, "progress after the broker outage", |d| {
            d.summary.as_ref().is_some_and(|s| s.rows_out >= 6_500)
        })
        .await?;
    let retried = |log: &[ember_api::BatchInfo]| log.iter().filter(|b| b.attempts > 1).count();
    let after_broker = retried(&commits(&cluster, "outage")?);
    assert!(
        after_broker >= 1,
        "no batch was retried during the broker outage"
    );

    // Then the store goes away for 15 s.
    servers.cql.take();
    // New records keep arriving while the store is down.
    let late = tokio::spawn({
        let k = servers.kafka();
        let t = topic.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            produce_users_to(&k, &t, 500, 16).await
        }
    });
    tokio::time::sleep(Duration::from_secs(15)).await;
    late.await??;
    servers.start_cql().await?;
    let d = cluster
        .wait_job("outage", 4 * MIN, "8,500 rows out", |d| {
            d.summary
                .as_ref()
                .is_some_and(|s| s.rows_out == 8_500 && s.total_lag == 0)
        })
        .await?;
    assert_eq!(d.summary.unwrap_or_default().state, "running");
    let log = commits(&cluster, "outage")?;
    assert_eq!(assert_contiguous(&log).values().sum::<i64>(), 8_500);
    assert!(
        retried(&log) > after_broker,
        "no batch was retried during the store outage"
    );
    assert_eq!(
        count(
            &cql_session_at(&servers.cql()).await?,
            &format!("{ks}.created_users")
        )
        .await?,
        8_500
    );
    Ok(())
}
