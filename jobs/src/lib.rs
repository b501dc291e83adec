//! ember-jobs
