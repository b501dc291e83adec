//! `ember-ingest load` against the real broker: counts of good and malformed
//! messages on the topic match the report.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use ember_ingest::load::BadKind;

#[test]
fn load_bad_ratio_counts() {
    let topic = common::create_topic("load");
    let out = Command::new(common::bin())
        .args([
            "load",
            "--count",
            "1000",
            "--rate",
            "5000",
            "--bad-ratio",
            "0.05",
        ])
        .args(["--seed", "11", "--json", "--topic", &topic, "--brokers"])
        .arg(common::brokers())
        .output()
        .expect("run ember-ingest load");
    assert!(
        out.status.success(),
        "load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("load --json prints a JSON report");
    assert_eq!(report["sent"], 1000);
    assert_eq!(report["delivered"], 1000);
    assert_eq!(report["delivery_errors"], 0);
    assert_eq!(report["bad_total"], 50);
    assert_eq!(report["good"], 950);
    for kind in ["not_json", "non_object", "empty", "non_utf8", "missing_id"] {
        assert_eq!(report["bad"][kind], 10, "{kind}");
    }

    let msgs = common::read_topic(&topic);
    assert_eq!(msgs.len(), 1000);
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ids = HashSet::new();
    for m in &msgs {
        match BadKind::classify(&m.value) {
            Some(k) => *kinds.entry(k.name()).or_default() += 1,
            None => {
                let v: serde_json::Value = serde_json::from_slice(&m.value).expect("json");
                let id = v["id"].as_str().expect("id").to_string();
                assert_eq!(m.key.as_deref(), Some(id.as_bytes()), "key is the id");
                assert_eq!(v.as_object().map(|o| o.len()), Some(12));
                assert!(ids.insert(id), "duplicate id");
                *kinds.entry("good").or_default() += 1;
            }
        }
    }
    assert_eq!(kinds.get("good"), Some(&950));
    for kind in ["not_json", "non_object", "empty", "non_utf8", "missing_id"] {
        assert_eq!(kinds.get(kind), Some(&10), "{kind} on the topic");
    }
}

#[test]
fn load_refuses_bad_flags() {
    for (args, flag) in [
        (
            vec!["load", "--count", "10", "--bad-ratio", "1.5"],
            "--bad-ratio",
        ),
        (vec!["load", "--count", "10", "--rate", "0"], "--rate"),
        (vec!["load", "--count", "0"], "--count"),
        (
            vec!["load", "--count", "10", "--topic", "no spaces"],
            "--topic",
        ),
    ] {
        let out = Command::new(common::bin())
            .args(&args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
    }
}

/// The idempotent producer works against tansu while the broker stays up
/// (it is off by default only because tansu 0.6 breaks across restarts).
#[test]
fn load_with_idempotent_producer() {
    let topic = common::create_topic("idem");
    let out = Command::new(common::bin())
        .args(["load", "--count", "300", "--idempotence", "true", "--json"])
        .args(["--topic", &topic, "--brokers"])
        .arg(common::brokers())
        .output()
        .expect("run ember-ingest load");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["delivered"], 300);
    assert_eq!(common::read_topic(&topic).len(), 300);
}
