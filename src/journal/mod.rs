//! The SQLite database beside the local files (default `<local>/.stowage/journal.db`).
//! It holds what plain files cannot: the SHA-256, headers and metadata of objects in
//! file-system stores. WAL mode with one transaction per change survives `kill -9`.

mod migrations;
mod objects;
mod outdated;
mod repairs;
mod tiers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::error::{Error, Result};

pub use migrations::{MigratedRow, MigrationScope};
pub use objects::ObjectRecord;
pub use repairs::{RepairOp, RepairRow};
pub use tiers::TierRow;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    cache_control TEXT NOT NULL,
    metadata TEXT NOT NULL,
    etag TEXT,
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
";

/// Journals made before `table` had `column` gain it, with its default in their rows.
fn add_column(
    conn: &Connection,
    table: &str,
    column: &str,
    declaration: &str,
) -> rusqlite::Result<()> {
    let present: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )?;
    if !present {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
        ))?;
    }
    Ok(())
}

/// A shared handle; every call runs on a blocking thread, never on the event loop.
#[derive(Clone)]
pub struct Journal {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    pub fn open(path: &Path) -> Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| cannot_create(path, &e))?;
        }
        // The bundled SQLite reads a name starting `file:` as a URI (`file:x?mode=memory`
        // would be kept in memory); an absolute path is always a file of that name.
        let file = std::path::absolute(path).map_err(|e| cannot_create(path, &e))?;
        let conn = Connection::open(&file).map_err(|e| open_error(path, e))?;
        // NORMAL is durable against process crashes in WAL mode; only a power loss can
        // drop the last commits, and those are re-derivable from the files themselves.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .and_then(|_| conn.execute_batch(SCHEMA))
        .and_then(|_| add_column(&conn, "objects", "etag", "TEXT"))
        .and_then(|_| conn.execute_batch(repairs::REPAIRS_SCHEMA))
        .and_then(|_| add_column(&conn, "repairs", "target", "TEXT"))
        .and_then(|_| add_column(&conn, "repairs", "side", "TEXT"))
        .and_then(|_| conn.execute_batch(migrations::MIGRATIONS_SCHEMA))
        .and_then(|_| add_column(&conn, "migrated", "etag", "TEXT"))
        .and_then(|_| add_column(&conn, "migrated", "racy", "INTEGER NOT NULL DEFAULT 0"))
        .and_then(|_| conn.execute_batch(tiers::TIERS_SCHEMA))
        .and_then(|_| conn.execute_batch(outdated::OUTDATED_SCHEMA))
        .map_err(|e| open_error(path, e))?;
        Ok(Journal {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes whenever another connection (another process, say) commits to the
    /// journal; this connection's own commits leave it be.
    pub async fn data_version(&self) -> Result<i64> {
        self.run(|c| c.query_row("PRAGMA data_version", [], |row| row.get(0)))
            .await
    }

    /// Runs `f` with the connection on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn).map_err(|e| sqlite_error(&path, e))
        })
        .await
        .map_err(|e| Error::task_failed("journal", e))?
    }
}

/// A path SQLite cannot open or that holds something else (a folder, `/etc/passwd`) is
/// a setting to fix; a locked journal is not.
fn open_error(path: &Path, err: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match err.sqlite_error_code() {
        Some(C::CannotOpen | C::NotADatabase | C::ReadOnly | C::PermissionDenied) => {
            Error::config("journal", format!("{}: {err}", path.display()))
        }
        _ => sqlite_error(path, err),
    }
}

/// The journal's folder is part of the configuration: one that cannot be made is the
/// `journal` option's fault, not a missing object or an outage.
pub fn cannot_create(path: &Path, err: &std::io::Error) -> Error {
    Error::config(
        "journal",
        format!("{}: cannot create its folder: {err}", path.display()),
    )
}

fn sqlite_error(path: &Path, err: rusqlite::Error) -> Error {
    Error::Unavailable(format!("journal {}: {err}", path.display()))
}

/// A journal file an older stowage made: `sql` creates its tables and rows.
#[cfg(test)]
fn made_by_older_version(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    (dir, path)
}
