//! Last line of defence around third-party decoders, which can panic on
//! corrupt input.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, Result};

/// Runs `f`, turning a panic into `DicomInvalid`. Nothing borrowed by `f`
/// outlives a failed call, so observing broken invariants is not a concern.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| Error::DicomInvalid(format!("corrupt data: the decoder failed while {what}")))
}
