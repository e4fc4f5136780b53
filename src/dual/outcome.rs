//! What a write did on each side.

use crate::error::{Error, Result};
use crate::key::Key;
use crate::store::object::Written;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Local,
    Cloud,
    /// The colder tiers: never written directly, only by tier moves.
    Warm,
    Cold,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Cloud => "cloud",
            Side::Warm => "warm",
            Side::Cold => "cold",
        }
    }

    /// The option that configures this side's store.
    pub fn field(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Cloud => "cloud",
            Side::Warm => "tiers.warm",
            Side::Cold => "tiers.cold",
        }
    }
}

/// Where a listed object is: on one side, or on the local side and the cloud alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    On(Side),
    Both,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::On(side) => side.as_str(),
            Location::Both => "both",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Skipped,
    Failed,
    Queued,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Queued => "queued",
        }
    }
}

/// A side that failed while the other succeeded.
#[derive(Debug)]
pub struct SideError {
    pub side: Side,
    pub error: Error,
}

#[derive(Debug)]
pub struct PutResult {
    pub key: Key,
    pub written: Written,
    pub local: Outcome,
    pub cloud: Outcome,
    pub errors: Vec<SideError>,
}

impl PutResult {
    pub fn outcome_mut(&mut self, side: Side) -> &mut Outcome {
        match side {
            Side::Local => &mut self.local,
            // Writes go to the two sides only; tiers are filled by moves.
            Side::Cloud | Side::Warm | Side::Cold => &mut self.cloud,
        }
    }
}

/// Succeeds when at least one side wrote; otherwise returns the first side's error.
pub fn fold(key: &Key, results: Vec<(Side, Result<Written>)>) -> Result<PutResult> {
    let mut written = None;
    let mut outcomes = [Outcome::Skipped, Outcome::Skipped];
    let mut errors = Vec::new();
    for (side, result) in results {
        let slot = &mut outcomes[side as usize];
        match result {
            Ok(w) => {
                *slot = Outcome::Written;
                written.get_or_insert(w);
            }
            Err(error) => {
                *slot = Outcome::Failed;
                errors.push(SideError { side, error });
            }
        }
    }
    match written {
        Some(written) => Ok(PutResult {
            key: key.clone(),
            written,
            local: outcomes[Side::Local as usize],
            cloud: outcomes[Side::Cloud as usize],
            errors,
        }),
        None => Err(errors
            .into_iter()
            .next()
            .map(|e| e.error)
            .expect("at least one side was written to")),
    }
}
