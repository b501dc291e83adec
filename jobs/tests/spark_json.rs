//! Ember's `from_json` and `get_json_object` against the outputs Spark 4.1
//! itself produced for the same inputs (jobs/tests/spark_reference.py wrote
//! data/spark_json_expected.json with pyspark).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use serde_json::Value;

fn expected() -> Value {
    serde_json::from_str(include_str!("data/spark_json_expected.json")).expect("expected data")
}

async fn ctx_with(strings: Vec<Option<&str>>) -> SessionContext {
    let ctx = SessionContext::new();
    ember_jobs::functions::register(&ctx);
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(strings))]).expect("batch");
    ctx.register_batch("t", batch).expect("register");
    ctx
}

#[tokio::test]
async fn from_json_matches_spark() {
    let e = expected();
    let schema = e["from_json_schema"].as_str().expect("schema");
    let cases = e["from_json"].as_array().expect("cases");
    let inputs: Vec<Option<&str>> = cases.iter().map(|c| c["input"].as_str()).collect();
    let ctx = ctx_with(inputs).await;
    let batches = ctx
        .sql(&format!("SELECT from_json(s, '{schema}') AS d FROM t"))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let d = batches[0].column(0).as_struct();
    assert_eq!(d.len(), cases.len());
    for (i, case) in cases.iter().enumerate() {
        let want = &case["output"];
        if want.is_null() {
            assert!(
                d.is_null(i),
                "case {i} {:?}: Spark gives null",
                case["input"]
            );
            continue;
        }
        assert!(
            d.is_valid(i),
            "case {i} {:?}: Spark gives a struct",
            case["input"]
        );
        for (f, col) in d.fields().iter().zip(d.columns()) {
            let got: Value = if col.is_null(i) {
                Value::Null
            } else {
                match col.data_type() {
                    DataType::Utf8 => Value::from(col.as_string::<i32>().value(i)),
                    DataType::Int32 => Value::from(col.as_primitive::<Int32Type>().value(i)),
                    DataType::Float64 => Value::from(col.as_primitive::<Float64Type>().value(i)),
                    DataType::Boolean => Value::from(col.as_boolean().value(i)),
                    other => panic!("unexpected type {other}"),
                }
            };
            assert_eq!(
                &got,
                &want[f.name().as_str()],
                "case {i} {:?}, field {}",
                case["input"],
                f.name()
            );
        }
    }
}

#[tokio::test]
async fn get_json_object_matches_spark() {
    let e = expected();
    for (i, case) in e["get_json_object"]
        .as_array()
        .expect("cases")
        .iter()
        .enumerate()
    {
        let ctx = ctx_with(vec![case["json"].as_str()]).await;
        let path = case["path"].as_str().expect("path").replace('\'', "''");
        let batches = ctx
            .sql(&format!("SELECT get_json_object(s, '{path}') FROM t"))
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        let col = batches[0].column(0).as_string::<i32>();
        let got = if col.is_null(0) {
            Value::Null
        } else {
            Value::from(col.value(0))
        };
        assert_eq!(
            got, case["output"],
            "case {i}: {} at {}",
            case["json"], case["path"]
        );
    }
}
