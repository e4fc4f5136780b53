//! stowage: move a Node backend's files from local disk to object storage without
//! downtime. Everything outside `js` is plain Rust with no Node dependency.

pub mod config;
pub mod dicom;
pub mod dual;
pub mod error;
pub mod ingest;
pub mod journal;
pub mod key;
pub mod migrate;
pub mod store;
pub mod tier;

mod js;
