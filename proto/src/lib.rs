//! Ember's protobuf contracts: plan-node encodings for the extension codecs,
//! and the CLI's gRPC service with the API types (serde-enabled, so the REST
//! API and `ember --json` speak the same shapes).
#![allow(clippy::all)]

tonic::include_proto!("ember");
