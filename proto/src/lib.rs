//! ember-proto
