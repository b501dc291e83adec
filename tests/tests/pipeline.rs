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

    let d = cluster
        .wait_job("ref", 4 * MIN, "20,000 rows out and no lag", |d| {
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
        assert_eq!(
            b.tasks.len(),
            b.ranges.len(),
            "batch {}: tasks vs ranges",
            b.batch_id
        );
        assert_eq!(
            b.tasks.iter().map(|t| t.rows_in).sum::<u64>(),
            b.ranges
                .iter()
                .map(|r| (r.until_offset - r.from_offset) as u64)
                .sum::<u64>()
        );
    }

    let session = cql_session().await?;
    let table = format!("{ks}.created_users");
    assert_eq!(count(&session, &table).await?, 20_000);
    let rows = read_users(&session, &table).await?;
    assert_eq!(rows.len(), 20_000);
    for (id, u) in &users {
        let row = rows.get(id).unwrap_or_else(|| panic!("user {id} missing"));
        for (col, val) in row {
            assert_eq!(
                val,
                &expected_text(&u[col.as_str()]),
                "user {id} column {col}"
            );
        }
    }

    // More data while the job runs is picked up by later batches.
    let batches_before = s.batches;
    users.extend(produce_users(&topic, 5_000, 2).await?);
    let d = cluster
        .wait_job("ref", 3 * MIN, "25,000 rows out", |d| {
            d.summary
                .as_ref()
                .is_some_and(|s| s.rows_out == 25_000 && s.total_lag == 0)
        })
        .await?;
    assert!(d.summary.unwrap_or_default().batches > batches_before);
    assert_eq!(count(&session, &table).await?, 25_000);
    assert_eq!(read_users(&session, &table).await?.len(), users.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_messages_become_dead_letters_and_the_latest_record_wins() -> anyhow::Result<()> {
    let topic = unique("e2e_dead");
    let ks = unique("ks_dead");
    create_topic(&topic, 4)?;
    let users = produce_users(&topic, 200, 7).await?;
    let bad: Vec<(&[u8], &str)> = vec![
        (b"not json at all", "not JSON"),
        (b"[1,2,3]", "not a JSON object"),
        (b"", "empty"),
        (b"\xff\xfe\xfd<script>", "UTF-8"),
        (br#"{"first_name":"no id"}"#, "missing"),
        (br#"{"id":"not-a-uuid","first_name":"x"}"#, "not a uuid"),
    ];
    produce_raw(
        &topic,
        bad.iter()
            .map(|(v, _)| (Some(b"bad".to_vec()), v.to_vec()))
            .collect(),
    )
    .await?;
    // The same id twice, same key (so same partition): the later record wins.
    let id = "0b7f8f4e-3c1a-4d2b-9e8f-7a6b5c4d3e2f";
    let first = serde_json::json!({"id": id, "first_name": "First", "last_name": "Old"});
    let second = serde_json::json!({"id": id, "first_name": "Second", "last_name": "New"});
    produce_raw(
        &topic,
        vec![(Some(id.as_bytes().to_vec()), first.to_string().into_bytes())],
    )
    .await?;
    produce_raw(
        &topic,
        vec![(
            Some(id.as_bytes().to_vec()),
            second.to_string().into_bytes(),
        )],
    )
    .await?;
    let total = users.len() as u64 + bad.len() as u64 + 2;

    let cluster = Cluster::start(2).await?;
    cluster
        .submit(&reference_spec("dead", &topic, &ks, "", ""), false)
        .await?;
    let d = cluster
        .wait_job("dead", 3 * MIN, "every record read", |d| {
            d.summary
                .as_ref()
                .is_some_and(|s| s.rows_in == total && s.total_lag == 0)
        })
        .await?;
    let s = d.summary.clone().unwrap_or_default();
    assert_eq!(s.rows_dead, bad.len() as u64, "dead letters");
    assert_eq!(
        s.rows_out,
        users.len() as u64 + 2,
        "rows out (both records of the same id are written)"
    );

    let session = cql_session().await?;
    assert_eq!(
        count(&session, &format!("{ks}.created_users")).await?,
        users.len() as i64 + 1
    );
    let rows = read_users(&session, &format!("{ks}.created_users")).await?;
    let row = rows.get(id).expect("the twice-produced id");
    assert_eq!(row["first_name"].as_deref(), Some("Second"));
    assert_eq!(row["last_name"].as_deref(), Some("New"));

    // One dead letter per malformed message, with its offset, raw bytes and reason.
    let r = session
        .query_unpaged(
            format!("SELECT topic, partition, offset, job, value, reason FROM {ks}.dead_letters"),
            (),
        )
        .await?
        .into_rows_result()?;
    let dead: Vec<(String, i32, i64, String, Vec<u8>, String)> = r
        .rows::<(String, i32, i64, String, Vec<u8>, String)>()?
        .collect::<Result<_, _>>()?;
    assert_eq!(dead.len(), bad.len(), "{dead:?}");
    for (value, reason) in &bad {
        let found = dead
            .iter()
            .find(|x| x.4 == *value)
            .unwrap_or_else(|| panic!("no dead letter for {value:?}"));
        assert!(
            found.5.contains(reason),
            "reason {:?} should mention {reason:?}",
            found.5
        );
        assert_eq!(
            (found.0.as_str(), found.3.as_str()),
            (topic.as_str(), "dead")
        );
        assert!(found.2 >= 0);
    }
    // The API shows them too, lossy-decoded.
    assert_eq!(d.dead_letters.len(), bad.len());
    Ok(())
}

/// The spec with its transform SQL replaced.
fn with_sql(spec: &str, sql: &str) -> String {
    let start = spec.find("sql = \"\"\"").expect("sql block");
    let end = start + spec[start..].find("\n\"\"\"").expect("end of sql block") + 4;
    format!(
        "{}sql = \"\"\"\n{sql}\n\"\"\"{}",
        &spec[..start],
        &spec[end..]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_specs_are_refused_naming_the_fault() -> anyhow::Result<()> {
    let topic = unique("e2e_spec");
    let ks = unique("ks_spec");
    create_topic(&topic, 2)?;
    let cluster = Cluster::start(0).await?;
    let good = reference_spec("spec", &topic, &ks, "", "");
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("maxOffsetsPerTrigger", "maxOfsetsPerTrigger"),
            "maxOfsetsPerTrigger",
        ),
        (
            good.replace("data.email AS email", "data.emial AS email"),
            "emial",
        ),
        (
            good.replace("data.email AS email", "data.email AS e_mail"),
            "e_mail",
        ),
        (good.replace("FROM source", "FROM sauce"), "sauce"),
        (
            good.replace(
                &format!("subscribe = \"{topic}\""),
                "subscribe = \"e2e_no_such_topic_x\"",
            ),
            "e2e_no_such_topic_x",
        ),
        (
            good.replace("[source.value]", "[source.value]\nkey = \"id\"\n"),
            "line",
        ),
        (
            with_sql(
                &good,
                "SELECT data.id AS id, CAST(count(*) AS VARCHAR) AS first_name FROM source GROUP BY data.id",
            ),
            "per-record",
        ),
    ];
    for (spec, must_name) in cases {
        let err = cluster
            .submit(&spec, false)
            .await
            .expect_err("a bad spec must be refused")
            .to_string();
        assert!(
            err.contains(must_name),
            "error {err:?} should name {must_name:?}"
        );
    }
    // The scheduler keeps running and accepts a good spec.
    let s = cluster.submit(&good, false).await?;
    assert_eq!(s.name, "spec");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn available_now_drains_the_backlog_in_several_batches_then_finishes() -> anyhow::Result<()> {
    let topic = unique("e2e_avail");
    let ks = unique("ks_avail");
    create_topic(&topic, 4)?;
    produce_users(&topic, 5_000, 3).await?;
    let cluster = Cluster::start(2).await?;
    let spec = with_max_offsets(
        &reference_spec("avail", &topic, &ks, "", "availableNow = true"),
        1000,
    )?;
    cluster.submit(&spec, false).await?;
    let d = cluster
        .wait_job("avail", 3 * MIN, "finished", |d| {
            d.summary.as_ref().is_some_and(|s| s.state == "finished")
        })
        .await?;
    let s = d.summary.clone().unwrap_or_default();
    assert_eq!(s.rows_out, 5_000);
    assert_eq!(s.batches, 5, "5,000 records at 1,000 per trigger");
    assert!(d.batches.iter().all(|b| b.rows_in == 1_000));
    // Records produced after the job finished are not read by it.
    produce_users(&topic, 10, 4).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster
            .job("avail")
            .await?
            .summary
            .unwrap_or_default()
            .rows_in,
        5_000
    );
    assert_eq!(
        count(&cql_session().await?, &format!("{ks}.created_users")).await?,
        5_000
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn once_runs_one_batch_of_everything_then_finishes() -> anyhow::Result<()> {
    let topic = unique("e2e_once");
    let ks = unique("ks_once");
    create_topic(&topic, 4)?;
    produce_users(&topic, 3_000, 5).await?;
    let cluster = Cluster::start(1).await?;
    // Like Spark's Trigger.Once, one batch of everything, whatever maxOffsetsPerTrigger says.
    let spec = with_max_offsets(
        &reference_spec("once", &topic, &ks, "", "once = true"),
        1000,
    )?;
    cluster.submit(&spec, false).await?;
    let d = cluster
        .wait_job("once", 2 * MIN, "finished", |d| {
            d.summary.as_ref().is_some_and(|s| s.state == "finished")
        })
        .await?;
    let s = d.summary.clone().unwrap_or_default();
    assert_eq!((s.batches, s.rows_out), (1, 3_000));
    Ok(())
}
