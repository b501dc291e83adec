//! API types: see the crate description.
