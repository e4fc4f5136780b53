//! The Node binding: type conversion and promise plumbing only. All behaviour lives
//! in the plain-Rust modules.

mod args;
mod dicom;
mod dual;
mod error;
mod manager;
mod migrate;
mod numbers;
mod options;
mod read_stream;
mod runtime;
mod tier;
mod values;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
