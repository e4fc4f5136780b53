//! Per-key ordering inside one process: a write and a repair of the same key never
//! interleave, so a repair cannot copy an older version over a newer one.

use std::hash::{BuildHasher, RandomState};

use tokio::sync::{Mutex, MutexGuard};

/// Striped so memory stays fixed however many keys there are; unrelated keys share
/// a stripe only by hash collision, which costs a little waiting, never correctness.
#[derive(Debug)]
pub struct KeyLocks {
    stripes: Vec<Mutex<()>>,
    hasher: RandomState,
}

const STRIPES: usize = 256;

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl KeyLocks {
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let stripe = self.hasher.hash_one(key) as usize % STRIPES;
        self.stripes[stripe].lock().await
    }
}
