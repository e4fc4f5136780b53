//! Stopping a render that is under way: its caller sets a flag from another thread,
//! and the render checks it between stages and, while libwebp encodes, after each row
//! of macroblocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A render's stop flag; the default one is never set.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

impl Cancel {
    pub fn new(flag: Arc<AtomicBool>) -> Self {
        Cancel(Some(flag))
    }

    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// `ABORTED` once the flag is set.
    pub fn check(&self) -> Result<()> {
        match self.is_set() {
            true => Err(Error::Aborted("the render was aborted".into())),
            false => Ok(()),
        }
    }
}
