//! Last line of defence around third-party decoders, which can panic on
//! corrupt input.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::error::{Error, Result};

thread_local! {
    /// Set while this thread runs a guarded call.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into `DicomInvalid`. Nothing borrowed by `f`
/// outlives a failed call, so observing broken invariants is not a concern.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    quiet_guarded_panics();
    let outer = GUARDED.replace(true);
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.set(outer);
    result
        .map_err(|_| Error::DicomInvalid(format!("corrupt data: the decoder failed while {what}")))
}

/// A decoder's panic on a corrupt file is an expected outcome that the caller
/// receives as an error; printing its message and backtrace to the server's
/// stderr as well would read like a crash. Other panics still print.
fn quiet_guarded_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.get() {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_and_the_flag_is_restored() {
        let error = guarded("testing", || panic!("corrupt")).expect_err("panic caught");
        assert_eq!(error.code(), "DICOM_INVALID");
        assert!(error.to_string().contains("while testing"), "{error}");
        assert!(!GUARDED.get());
        let nested = guarded("outer", || {
            let inner = guarded("inner", || 1);
            (inner.is_ok(), GUARDED.get())
        });
        assert_eq!(nested.expect("no panic"), (true, true));
        assert!(!GUARDED.get());
    }
}
