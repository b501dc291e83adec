//! The reference pipeline end to end: Kafka (tansu) → ember-scheduler +
//! ember-executors (Ballista) → ember-cql, through real servers.

use std::time::Duration;

use ember_e2e::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reference_job_delivers_every_user_exactly_once() -> anyhow::Result<()> {
    let topic = unique("e2e_ref");
    let ks = unique("ks_ref");
    create_topic(&topic, 4)?;
    let mut users = produce_users(&topic, 20_000, 1).await?;

    let cluster = Cluster::start(2).await?;
    let spec = reference_spec("ref", &topic, &ks, "", "");
    let submitted = cluster.submit(&spec, false).await?;
    assert_eq!(submitted.name, "ref");

    let d = cluster.wait_job("ref", 4 * MIN, "20,000 rows out and no lag", |d| {
        let s = d.summary.as_ref().expect("summary");
        s.rows_out == 20_000 && s.total_lag == 0
    })
    .await?;
    let s = d.summary.clone().unwrap_or_default();
    assert_eq!((s.rows_in, s.rows_dead), (20_000, 0));

    // With two executors, the tasks of a batch run on both.
    assert!(
        d.batches.iter().any(|b| b.executors.len() == 2),
        "no batch ran on both executors: {:?}",
        d.batches.iter().map(|b| &b.executors).collect::<Vec<_>>()
    );
    // Every batch's tasks cover its ranges exactly once.
    for b in &d.batches {
        assert_eq!(b.tasks.len(), b.ranges.len(), "batch {}: tasks vs ranges", b.batch_id);
        assert_eq!(b.tasks.iter().map(|t| t.rows_in).sum::<u64>(), b.ranges.iter().map(|r| (r.until_offset - r.from_offset) as u64).sum::<u64>());
    }

    let session = cql_session().await?;
    let table = format!("{ks}.created_users");
    assert_eq!(count(&session, &table).await?, 20_000);
    let rows = read_users(&session, &table).await?;
    assert_eq!(rows.len(), 20_000);
    for (id, u) in &users {
        let row = rows.get(id).unwrap_or_else(|| panic!("user {id} missing"));
        for (col, val) in row {
            assert_eq!(val, &expected_text(&u[col.as_str()]), "user {id} column {col}");
        }
    }

    // More data while the job runs is picked up by later batches.
    let batches_before = s.batches;
    users.extend(produce_users(&topic, 5_000, 2).await?);
    let d = cluster.wait_job("ref", 3 * MIN, "25,000 rows out", |d| d.summary.as_ref().is_some_and(|s| s.rows_out == 25_000 && s.total_lag == 0)).await?;
    assert!(d.summary.unwrap_or_default().batches > batches_before);
    assert_eq!(count(&session, &table).await?, 25_000);
    assert_eq!(read_users(&session, &table).await?.len(), users.len());
    Ok(())
}
