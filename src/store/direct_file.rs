//! A download's file written around the page cache (`O_DIRECT`), where its file system
//! says it takes direct writes.
//!
//! Why: a buffered write of a large download and its fsync cost more system CPU than
//! the copy itself. ext4 reserves, maps and later writes back every 4 KiB block of the
//! page cache on the writer's account, and on a VM whose host takes back unused
//! memory, the first touch of each page-cache page costs more still. A direct write
//! copies the bytes once, into an aligned buffer, and hands the device whole MiBs.
//! The file is then not in the page cache: its first read comes from the disk.

use std::fs::File;
use std::io::{self, Write};

/// Offsets, lengths and the buffer's address are multiples of this; a file system's
/// direct-I/O alignment must divide it.
const ALIGN: usize = 4096;
/// Bytes per direct write.
const BUF: usize = 1024 * 1024;

pub(super) struct DirectFile {
    file: File,
    /// `BUF + ALIGN` bytes, of which the `BUF` from `start` on are aligned.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// Bytes taken so far.
    len: u64,
}

impl DirectFile {
    /// Switches `file`, created empty, to direct writes; gives it back where its file
    /// system does not take them at [`ALIGN`] (or does not say).
    pub fn new(file: File) -> Result<DirectFile, File> {
        if !switch_to_direct(&file) {
            return Err(file);
        }
        let buf = vec![0u8; BUF + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Ok(DirectFile {
            file,
            buf,
            start,
            filled: 0,
            len: 0,
        })
    }

    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(BUF - self.filled);
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            self.len += n as u64;
            data = &data[n..];
            if self.filled == BUF {
                self.write_window(BUF)?;
            }
        }
        Ok(())
    }

    /// Writes what is buffered and returns the file, not yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        if self.filled > 0 {
            // Direct writes are whole blocks: the tail goes out padded, and the
            // padding is cut off after.
            let padded = self.filled.next_multiple_of(ALIGN);
            self.buf[self.start + self.filled..self.start + padded].fill(0);
            self.write_window(padded)?;
            self.file.set_len(self.len)?;
        }
        Ok(self.file)
    }

    /// Writes the first `n` bytes of the aligned window and empties it.
    fn write_window(&mut self, n: usize) -> io::Result<()> {
        self.file.write_all(&self.buf[self.start..self.start + n])?;
        self.filled = 0;
        Ok(())
    }
}

/// Sets `O_DIRECT` on `file` if `statx` reports direct-I/O alignments (Linux 6.1 on)
/// that divide [`ALIGN`].
#[cfg(target_os = "linux")]
fn switch_to_direct(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: all-zero is a valid `statx` (plain integers).
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the path is a NUL-terminated empty string and `stx` outlives the call;
    // with AT_EMPTY_PATH the kernel reads `fd`, which `file` keeps open. The raw
    // system call, not glibc's wrapper (2.28 on), keeps older glibc able to load the
    // addon.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx as *mut libc::statx,
        )
    };
    let divides = |align: u32| ALIGN.is_multiple_of(align as usize);
    if rc != 0
        || stx.stx_mask & libc::STATX_DIOALIGN == 0
        || !divides(stx.stx_dio_mem_align)
        || !divides(stx.stx_dio_offset_align)
    {
        return false;
    }
    // SAFETY: F_GETFL and F_SETFL take and return plain integers on an open `fd`.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn switch_to_direct(_: &File) -> bool {
    false
}

/// A folder for tests that write files: in the crate's folder, since `/tmp` may be a
/// tmpfs, which reports no direct-I/O alignment.
#[cfg(test)]
pub(super) fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn is_direct(file: &File) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: F_GETFL reads the flags of an open descriptor.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        flags & libc::O_DIRECT != 0
    }

    #[test]
    fn writes_every_tail_length_exactly() {
        let dir = scratch_dir();
        for len in [1, ALIGN - 1, ALIGN, BUF, BUF + 1, 3 * BUF + 12_345] {
            let path = dir.path().join(format!("{len}.bin"));
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let direct = DirectFile::new(File::create(&path).unwrap());
            let mut direct = direct.unwrap_or_else(|_| {
                panic!("this file system takes no direct writes; run the tests on ext4/xfs")
            });
            assert!(is_direct(&direct.file));
            for chunk in data.chunks(64 * 1024 + 3) {
                direct.write_all(chunk).unwrap();
            }
            direct.finish().unwrap().sync_all().unwrap();
            assert!(std::fs::read(&path).unwrap() == data, "{len} bytes");
        }
    }

    #[test]
    fn a_file_system_without_direct_io_gets_the_file_back() {
        let file = File::open("/dev/null").unwrap();
        let back = DirectFile::new(file)
            .err()
            .expect("no direct writes on /dev/null");
        assert!(!is_direct(&back));
    }
}
