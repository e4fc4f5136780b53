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
    fn stripe(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % STRIPES
    }

    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(key)].lock().await
    }

    /// Locks several keys. Stripes are taken once each and in index order, so two
    /// callers locking the same keys in another order, or keys sharing a stripe,
    /// cannot deadlock.
    pub async fn lock_all<const N: usize>(&self, keys: [&str; N]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes = keys.map(|key| self.stripe(key));
        stripes.sort_unstable();
        let mut guards = Vec::with_capacity(N);
        for (i, &stripe) in stripes.iter().enumerate() {
            if i == 0 || stripes[i - 1] != stripe {
                guards.push(self.stripes[stripe].lock().await);
            }
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn crossed_orders_and_one_key_twice_do_not_deadlock() {
        let locks = KeyLocks::default();
        let run = |keys: [&'static str; 2]| {
            let locks = &locks;
            async move {
                for _ in 0..200 {
                    let held = locks.lock_all(keys).await;
                    tokio::task::yield_now().await;
                    drop(held);
                }
            }
        };
        let all = async { tokio::join!(run(["a", "b"]), run(["b", "a"]), run(["a", "a"])) };
        let limit = std::time::Duration::from_secs(10);
        assert!(tokio::time::timeout(limit, all).await.is_ok());
    }
}
