//! The executor's Kafka consumers against a real broker (EMBER_KAFKA, started
//! by scripts/stack): a range that starts where the partition's last range
//! ended goes on from the pooled consumer's prefetch; any other range seeks;
//! either way each range yields exactly its own records. A consumer idle at
//! its partition's end is unassigned, and one with records still ahead is
//! not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::collect;
use ember_e2e::{create_topic, kafka, producer, unique};
use ember_jobs::kafka::consumer::{END_LAG, consumer_stats};
use ember_jobs::kafka::scan::ranges_exec;
use ember_jobs::kafka::{KafkaScanConfig, KafkaScanExec, OffsetRange};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// (offset, value) of every record a scan of `range` returns.
async fn read(job: &str, range: OffsetRange) -> anyhow::Result<Vec<(i64, String)>> {
    let config = Arc::new(KafkaScanConfig {
        job: job.into(),
        bootstrap_servers: kafka(),
        consumer_options: BTreeMap::new(),
        decoder: None,
        fetch_timeout: Duration::from_secs(20),
    });
    let scan = Arc::new(KafkaScanExec::new(ranges_exec(&[range])?, config, None)?);
    let batches: Vec<RecordBatch> = collect(scan, Arc::new(TaskContext::default())).await?;
    let mut out = Vec::new();
    for b in batches {
        let offsets = b
            .column_by_name("offset")
            .expect("offset column")
            .as_primitive::<Int64Type>();
        let values = b
            .column_by_name("value")
            .expect("value column")
            .as_binary::<i32>();
        for i in 0..b.num_rows() {
            out.push((
                offsets.value(i),
                String::from_utf8(values.value(i).to_vec())?,
            ));
        }
    }
    Ok(out)
}

/// Records k{i}/v{i} for each i into partition 0, queued in order before
/// any delivery is awaited.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    ids: std::ops::Range<i64>,
) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    for i in ids {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition(0);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("queue: {e}"))?,
        );
    }
    for p in pending {
        p.await?.map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    }
    Ok(())
}

fn expected(from: i64, until: i64) -> Vec<(i64, String)> {
    (from..until).map(|o| (o, format!("v{o}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consecutive_ranges_reuse_the_partitions_consumer_and_others_seek() -> anyhow::Result<()> {
    let topic = unique("pool");
    create_topic(&topic, 1)?;
    let producer = producer()?;
    produce(&producer, &topic, 0..300).await?;

    let range = |from, until| OffsetRange {
        topic: topic.clone(),
        partition: 0,
        from,
        until,
    };
    let job = topic.as_str();
    let s0 = consumer_stats();
    assert_eq!(read(job, range(0, 100)).await?, expected(0, 100));
    let s1 = consumer_stats();
    assert_eq!(
        s1.created,
        s0.created + 1,
        "the first read creates a consumer"
    );

    assert_eq!(
        s1.unassigned_at_end,
        s0.unassigned_at_end + 1,
        "200 records from the end, the idle consumer is unassigned"
    );

    // The next micro-batch of the partition: no new consumer, no seek.
    assert_eq!(read(job, range(100, 200)).await?, expected(100, 200));
    let s2 = consumer_stats();
    assert_eq!(
        (s2.created, s2.continued, s2.seeks),
        (s1.created, s1.continued + 1, s1.seeks),
        "a range starting where the last ended goes on from where it stood"
    );

    // A replay of earlier offsets (a retried batch) seeks back.
    assert_eq!(read(job, range(50, 60)).await?, expected(50, 60));
    let s3 = consumer_stats();
    assert_eq!((s3.created, s3.seeks), (s2.created, s2.seeks + 1));

    // And goes on from there again: the consumer that sought stopped
    // fetching while idle, and starts again where it stopped.
    assert_eq!(read(job, range(60, 300)).await?, expected(60, 300));
    let s4 = consumer_stats();
    assert_eq!(s4.continued, s3.continued + 1);
    assert_eq!(s4.created, s3.created);

    // Records that arrive after a read reached the partition's end are read
    // by the same consumer.
    produce(&producer, &topic, 300..350).await?;
    assert_eq!(read(job, range(300, 350)).await?, expected(300, 350));
    let s5 = consumer_stats();
    assert_eq!(
        (s5.created, s5.continued, s5.seeks),
        (s4.created, s4.continued + 1, s4.seeks)
    );
    assert_eq!(
        s5.unassigned_at_end,
        s4.unassigned_at_end + 1,
        "at the end: unassigned"
    );

    // With more than END_LAG records still ahead, the idle consumer keeps
    // fetching them: not unassigned.
    let end = 400 + END_LAG + 100;
    produce(&producer, &topic, 350..end).await?;
    assert_eq!(read(job, range(350, 400)).await?, expected(350, 400));
    let s6 = consumer_stats();
    assert_eq!(
        s6.unassigned_at_end, s5.unassigned_at_end,
        "far from the end: still assigned"
    );
    assert_eq!(read(job, range(400, end)).await?, expected(400, end));
    let s7 = consumer_stats();
    assert_eq!(
        (s7.created, s7.continued, s7.seeks, s7.unassigned_at_end),
        (
            s6.created,
            s6.continued + 1,
            s6.seeks,
            s6.unassigned_at_end + 1
        )
    );
    Ok(())
}

/// The scheduler's trigger read: every partition's earliest and latest
/// offsets, of several topics, from one ListOffsets request per end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_cover_every_partition_of_every_topic() -> anyhow::Result<()> {
    use ember_jobs::kafka::TopicPartition;
    use ember_jobs::kafka::consumer::{consumer_config, watermarks};

    let (a, b) = (unique("wm_a"), unique("wm_b"));
    create_topic(&a, 3)?;
    create_topic(&b, 1)?;
    let producer = producer()?;
    for (topic, partition, n) in [(&a, 1, 5), (&a, 2, 12), (&b, 0, 3)] {
        for i in 0..n {
            let value = format!("v{i}");
            producer
                .send(
                    FutureRecord::<(), _>::to(topic)
                        .payload(&value)
                        .partition(partition),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        }
    }
    let topics = vec![a.clone(), b.clone()];
    let (low, high) = tokio::task::spawn_blocking(move || {
        let c = consumer_config(&kafka(), "wm", &BTreeMap::new()).create()?;
        watermarks(&c, &topics, Duration::from_secs(10)).map_err(anyhow::Error::msg)
    })
    .await??;
    let tp = |topic: &String, partition| TopicPartition {
        topic: topic.clone(),
        partition,
    };
    let want_high = BTreeMap::from([
        (tp(&a, 0), 0),
        (tp(&a, 1), 5),
        (tp(&a, 2), 12),
        (tp(&b, 0), 3),
    ]);
    let want_low: BTreeMap<_, _> = want_high.keys().map(|k| (k.clone(), 0)).collect();
    assert_eq!(high, want_high);
    assert_eq!(low, want_low);
    Ok(())
}
