// Generates the Rust types of proto/ember.proto with a vendored protoc, so a
// fresh machine needs no protobuf-compiler package.

/// The API messages, which also travel as JSON (REST, `ember --json`).
const API_MESSAGES: &[&str] = &[
    "OffsetRange",
    "PartitionProgress",
    "TaskReport",
    "BatchInfo",
    "DeadLetterSample",
    "JobSummary",
    "MetricPoint",
    "JobDetail",
    "ExecutorInfo",
    "JobList",
    "ExecutorList",
    "SubmitJobRequest",
    "SubmitJobReply",
    "JobRef",
    "ListRequest",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/ember.proto");
    let mut b = tonic_prost_build::configure();
    for m in API_MESSAGES {
        b = b.message_attribute(
            format!(".ember.{m}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
    }
    b.compile_protos(&["proto/ember.proto"], &["proto"])?;
    Ok(())
}
