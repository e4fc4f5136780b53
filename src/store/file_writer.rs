//! A download's file, written and hashed on one blocking thread. The network hands over
//! small chunks (8–64 KiB); they are gathered without copying and passed on about a MiB
//! at a time, so a runtime worker neither copies the bytes nor wakes a thread per chunk.
//! Downloads of [`DIRECT_MIN`] and more go around the page cache where the file system
//! allows (`direct_file.rs`); the rest in vectored writes of at most [`WRITE_MAX`] bytes.

use std::fs::File;
use std::io::{ErrorKind, IoSlice, Write};
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::direct_file::DirectFile;
use super::hash::StreamHasher;
use crate::error::{Error, Result};

/// Bytes gathered before they go to the thread.
const BATCH: usize = 1024 * 1024;
/// Bytes per write call. ext4 (Linux 6.16 on) gives a write page-cache folios as large as
/// the write, and on this machine (Linux 6.18, a VM) larger ones cost more to fill: a 20 MiB
/// file written in 1 MiB writes took 10–18 ms of system CPU, in 256 KiB writes 5.5–7 ms;
/// 128 and 512 KiB did no better.
const WRITE_MAX: usize = 256 * 1024;
/// Downloads of this size and more are written around the page cache, where the file
/// system allows.
const DIRECT_MIN: u64 = 8 * 1024 * 1024;
/// Batches queued ahead of the thread, so a slow disk holds back the download instead of
/// filling memory.
const QUEUED: usize = 2;

/// What happens to a download's file next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// It is the caller's: one of [`DIRECT_MIN`] or more goes around the page cache.
    Kept,
    /// It is read back at once and removed (a copy between stores through a temporary
    /// file): it goes through the page cache, whatever its size.
    ReadBack,
}

/// The file's size and SHA-256, once it is synced.
type Written = (u64, String);

enum Message {
    Write(Vec<Bytes>),
    /// Everything is written: sync the file and report what it holds.
    Finish,
    /// The download failed: let go of the file without syncing it.
    Discard,
}

pub(super) struct FileWriter {
    batch: Vec<Bytes>,
    batched: usize,
    tx: mpsc::Sender<Message>,
    /// Taken once the thread's outcome has been awaited.
    thread: Option<JoinHandle<Result<Option<Written>>>>,
}

impl FileWriter {
    /// Creates (or truncates) `path` for a download of `size` bytes.
    pub async fn create(path: &Path, size: u64, next: Next) -> Result<FileWriter> {
        let shown = path.display().to_string();
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| Error::from_file_io(e, &shown))?
            .into_std()
            .await;
        let (tx, rx) = mpsc::channel(QUEUED);
        // The sink, and a direct write's buffer, are made on the thread that frees them:
        // memory freed by another thread goes back to the allocator later.
        let thread = tokio::task::spawn_blocking(move || {
            write_messages(Sink::new(file, size, next), rx, &shown)
        });
        Ok(FileWriter {
            batch: Vec::new(),
            batched: 0,
            tx,
            thread: Some(thread),
        })
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= BATCH {
            self.batched = 0;
            let batch = std::mem::take(&mut self.batch);
            if self.tx.send(Message::Write(batch)).await.is_err() {
                // The thread stopped at a write error; that error is the one to report.
                return self.stopped().await.map(drop);
            }
        }
        Ok(())
    }

    /// Writes what is left, syncs the file, and returns its size and SHA-256.
    pub async fn finish(mut self) -> Result<Written> {
        let batch = std::mem::take(&mut self.batch);
        // A failed send means the thread already stopped; `stopped` reports why.
        let _ = self.tx.send(Message::Write(batch)).await;
        let _ = self.tx.send(Message::Finish).await;
        self.stopped().await?.ok_or_else(|| {
            Error::task_failed("file writer", "stopped before the end of the download")
        })
    }

    /// Stops without syncing, once the thread has let go of the file (so the caller can
    /// remove it).
    pub async fn discard(mut self) {
        let _ = self.tx.send(Message::Discard).await;
        let _ = self.stopped().await;
    }

    /// The thread's outcome, once it has ended; `Ok(None)` if it was already taken.
    async fn stopped(&mut self) -> Result<Option<Written>> {
        match self.thread.take() {
            Some(thread) => thread
                .await
                .map_err(|e| Error::task_failed("file writer", e))?,
            None => Ok(None),
        }
    }
}

/// Where the bytes go: large files around the page cache (see `direct_file.rs`),
/// the rest through it.
enum Sink {
    Buffered(File),
    Direct(DirectFile),
}

impl Sink {
    /// `file` was just created, for `size` bytes.
    fn new(file: File, size: u64, next: Next) -> Sink {
        if size < DIRECT_MIN || next == Next::ReadBack {
            return Sink::Buffered(file);
        }
        DirectFile::new(file).map_or_else(Sink::Buffered, Sink::Direct)
    }

    fn write(&mut self, batch: &[Bytes]) -> std::io::Result<()> {
        match self {
            Sink::Buffered(file) => write_batch(file, batch),
            Sink::Direct(direct) => batch.iter().try_for_each(|chunk| direct.write_all(chunk)),
        }
    }

    /// Writes what is left and syncs the file.
    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Buffered(file) => file.sync_all(),
            Sink::Direct(direct) => direct.finish()?.sync_all(),
        }
    }
}

/// The thread's loop; `None` unless it was told to `Finish`.
fn write_messages(
    mut sink: Sink,
    mut rx: mpsc::Receiver<Message>,
    shown: &str,
) -> Result<Option<Written>> {
    let mut hasher = StreamHasher::default();
    while let Some(message) = rx.blocking_recv() {
        match message {
            Message::Write(batch) => {
                batch.iter().for_each(|chunk| hasher.update(chunk));
                sink.write(&batch)
                    .map_err(|e| Error::from_file_io(e, shown))?;
            }
            Message::Finish => {
                sink.finish().map_err(|e| Error::from_file_io(e, shown))?;
                return Ok(Some((hasher.bytes(), hasher.finish())));
            }
            Message::Discard => break,
        }
    }
    Ok(None)
}

/// Writes `batch` in order, in vectored writes of at most [`WRITE_MAX`] bytes.
fn write_batch(file: &mut impl Write, batch: &[Bytes]) -> std::io::Result<()> {
    let mut window: Vec<IoSlice> = Vec::new();
    let mut windowed = 0;
    for piece in batch.iter().flat_map(|chunk| chunk.chunks(WRITE_MAX)) {
        if windowed + piece.len() > WRITE_MAX {
            write_all_vectored(file, &mut window)?;
            window.clear();
            windowed = 0;
        }
        window.push(IoSlice::new(piece));
        windowed += piece.len();
    }
    write_all_vectored(file, &mut window)
}

/// std's `write_all_vectored`, which is not stable yet.
fn write_all_vectored(file: &mut impl Write, slices: &mut [IoSlice]) -> std::io::Result<()> {
    let mut rest = slices;
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::direct_file::scratch_dir;
    use crate::store::hash::sha256_hex;

    /// A writer that takes at most `limit` bytes per call, as a pipe or a full disk may,
    /// and remembers the most bytes one call was offered.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        largest_offer: usize,
    }

    impl Trickle {
        fn new(limit: usize) -> Self {
            Trickle {
                out: Vec::new(),
                limit,
                largest_offer: 0,
            }
        }
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let offered = bufs.iter().map(|b| b.len()).sum();
            self.largest_offer = self.largest_offer.max(offered);
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            self.write(first)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_resume_where_they_stopped() {
        let batch: Vec<Bytes> = (0..50u8)
            .map(|i| Bytes::from(vec![i; 1 + i as usize * 37]))
            .collect();
        let mut sink = Trickle::new(1000);
        write_batch(&mut sink, &batch).unwrap();
        assert_eq!(sink.out, batch.concat());
    }

    #[test]
    fn no_write_call_is_offered_more_than_write_max() {
        let batch: Vec<Bytes> = [1000, 2 * WRITE_MAX + 5, 64 * 1024, WRITE_MAX, 7]
            .iter()
            .enumerate()
            .map(|(i, &len)| Bytes::from(vec![i as u8; len]))
            .collect();
        let mut sink = Trickle::new(usize::MAX);
        write_batch(&mut sink, &batch).unwrap();
        assert_eq!(sink.out, batch.concat());
        assert_eq!(sink.largest_offer, WRITE_MAX);
    }

    /// Through the page cache and around it.
    #[tokio::test]
    async fn writes_and_hashes_many_batches() {
        let dir = scratch_dir();
        let path = dir.path().join("out.bin");
        let data: Vec<u8> = (0..3 * BATCH + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for declared in [data.len() as u64, DIRECT_MIN] {
            let mut writer = FileWriter::create(&path, declared, Next::Kept)
                .await
                .unwrap();
            for chunk in data.chunks(16 * 1024 + 7) {
                writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            let (size, sha256) = writer.finish().await.unwrap();
            assert_eq!(size, data.len() as u64);
            assert_eq!(sha256, sha256_hex(&data));
            assert!(std::fs::read(&path).unwrap() == data, "declared {declared}");
        }
    }

    #[test]
    fn only_large_files_kept_by_the_caller_go_around_the_page_cache() {
        let dir = scratch_dir();
        let sink = |size, next| Sink::new(File::create(dir.path().join("f")).unwrap(), size, next);
        assert!(matches!(sink(DIRECT_MIN, Next::Kept), Sink::Direct(_)));
        assert!(matches!(
            sink(DIRECT_MIN - 1, Next::Kept),
            Sink::Buffered(_)
        ));
        assert!(matches!(
            sink(DIRECT_MIN, Next::ReadBack),
            Sink::Buffered(_)
        ));
    }

    #[tokio::test]
    async fn a_write_error_is_reported() {
        let mut writer = FileWriter::create(Path::new("/dev/full"), 0, Next::Kept)
            .await
            .unwrap();
        let mut outcome = Ok(());
        for _ in 0..4 {
            outcome = writer.write(Bytes::from(vec![1u8; BATCH])).await;
            if outcome.is_err() {
                break;
            }
        }
        let err = match outcome {
            Err(e) => e,
            Ok(()) => writer.finish().await.unwrap_err(),
        };
        assert_eq!(err.code(), "UNAVAILABLE");
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
}
