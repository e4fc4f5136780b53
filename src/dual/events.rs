//! Audit and metrics events (`onEvent` in JavaScript). Emitting is a no-op without a
//! sink, so the hot path pays nothing when nobody listens.

use std::sync::Arc;

use super::Side;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
    CloudWriteFailed,
    LocalWriteFailed,
    Repaired,
    RepairFailed,
    IntegrityFailed,
    Migrated,
    MigrateFailed,
    TierMoved,
    TierMoveFailed,
    CloudDown,
    CloudUp,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Put => "put",
            EventKind::Delete => "delete",
            EventKind::CloudWriteFailed => "cloud-write-failed",
            EventKind::LocalWriteFailed => "local-write-failed",
            EventKind::Repaired => "repaired",
            EventKind::RepairFailed => "repair-failed",
            EventKind::IntegrityFailed => "integrity-failed",
            EventKind::Migrated => "migrated",
            EventKind::MigrateFailed => "migrate-failed",
            EventKind::TierMoved => "tier-moved",
            EventKind::TierMoveFailed => "tier-move-failed",
            EventKind::CloudDown => "cloud-down",
            EventKind::CloudUp => "cloud-up",
        }
    }

    /// The failure event of a write to `side`.
    pub fn write_failed(side: Side) -> Self {
        match side {
            Side::Local => EventKind::LocalWriteFailed,
            _ => EventKind::CloudWriteFailed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub key: String,
    pub size: Option<u64>,
    pub side: Option<Side>,
    pub code: Option<&'static str>,
    pub message: Option<String>,
}

impl Event {
    pub fn new(kind: EventKind, key: impl Into<String>) -> Self {
        Event {
            kind,
            key: key.into(),
            size: None,
            side: None,
            code: None,
            message: None,
        }
    }

    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    pub fn side(mut self, side: Side) -> Self {
        self.side = Some(side);
        self
    }

    /// Messages are already free of secrets (see `store::errors`).
    pub fn error(mut self, error: &Error) -> Self {
        self.code = Some(error.code());
        self.message = Some(error.to_string());
        self
    }
}

pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Events(Option<EventSink>);

impl Events {
    pub fn new(sink: Option<EventSink>) -> Self {
        Events(sink)
    }

    /// Builds the event only when someone listens.
    pub fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(sink) = &self.0 {
            sink(event());
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Events(on)"
        } else {
            "Events(off)"
        })
    }
}
