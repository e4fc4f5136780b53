//! File-system stores: objects are plain files at `root/key`, so an app that serves
//! the folder today keeps working. Headers and SHA-256 live in the journal.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;

use crate::error::{Error, Result};
use crate::key::{Key, STATE_DIR};

/// Folder under the root that holds stowage's own files; never listed as objects.

#[derive(Debug, Clone)]
pub struct LocalRoot {
    root: PathBuf,
    canonical: PathBuf,
}

/// Creates `folder` when missing. A folder that cannot be made (a file in its place
/// or in place of a parent, a parent that cannot hold folders) is a configuration
/// error naming `field`, not a missing object or an outage.
pub fn ensure_folder(folder: &Path, field: &str) -> Result<()> {
    let shown = folder.display().to_string();
    fs::create_dir_all(folder).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
            Error::config(field, format!("{shown} is not a folder"))
        }
        _ => Error::config(field, format!("{shown}: cannot create the folder: {e}")),
    })
}

impl LocalRoot {
    /// Creates the root folder when missing, as `fs.mkdir(…, { recursive: true })` would.
    /// `field` names the option that gave it.
    pub fn open(root: &Path, field: &str) -> Result<(LocalRoot, Arc<LocalFileSystem>)> {
        let shown = root.display().to_string();
        ensure_folder(root, field)?;
        let canonical = fs::canonicalize(root).map_err(|e| Error::from_io(e, &shown))?;
        let store = LocalFileSystem::new_with_prefix(&canonical)
            .map_err(|e| Error::config(field, format!("{shown}: {e}")))?;
        let root = LocalRoot {
            root: root.to_owned(),
            canonical,
        };
        Ok((root, Arc::new(store)))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The root with every symlink resolved: two roots that are one folder have one.
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// Refuses a key whose existing path components leave the root through a symlink.
    /// Components that do not exist yet are safe: the store creates them as directories.
    /// A read of anything but a regular file (or a directory, which the store reports
    /// missing itself) is `NOT_FOUND`: opening a FIFO blocks until a writer comes, and
    /// a device may never end. A staged write under a name too long for its staging
    /// file is `INVALID_KEY`.
    pub async fn check_inside(&self, key: &Key, access: Access) -> Result<()> {
        let (canonical, key) = (self.canonical.clone(), key.clone());
        tokio::task::spawn_blocking(move || check_inside(&canonical, &key, access))
            .await
            .map_err(|e| Error::task_failed("file-system", e))?
    }

    /// Removes the folders that held `key` and are now empty, deepest first, never the
    /// root. On S3 a folder goes with its last object; one left here would keep its name
    /// from ever being an object's (`a` cannot be written while the folder `a/` stands).
    /// `remove_dir` takes only an empty folder, so one a writer has just put a file in
    /// stays; a writer that made a folder and has not yet created its file sees it go,
    /// and the store's writes then make it again.
    pub async fn prune_folders(&self, key: &Key) {
        let (canonical, key) = (self.canonical.clone(), key.clone());
        let _ = tokio::task::spawn_blocking(move || {
            let mut folder = canonical.join(key.as_str());
            while folder.pop() && folder != canonical && fs::remove_dir(&folder).is_ok() {}
        })
        .await;
    }

    /// Copies the file at `from` to `to` as a file of its own: its bytes go to a staging
    /// file `to#n`, renamed into place. object_store hard-links instead, and a copy
    /// that shares its source's inode changes when an app rewrites the source in place;
    /// a later rename between the two names is then a no-op (POSIX renames nothing
    /// between two links of one file) that left the source and a staging link behind.
    pub async fn copy(&self, from: &Key, to: &Key) -> Result<CopiedFile> {
        let root = self.canonical.clone();
        let (from, to) = (from.clone(), to.clone());
        tokio::task::spawn_blocking(move || copy_file(&root, &from, &to))
            .await
            .map_err(|e| Error::task_failed("file-system", e))?
    }

    /// After a rename of `from` onto `to`: when both were links of one file, `rename(2)`
    /// did nothing and `from` is still there; it goes now, as a rename's source does.
    pub async fn unlink_if_same_file(&self, from: &Key, to: &Key) {
        let root = self.canonical.clone();
        let (from, to) = (root.join(from.as_str()), root.join(to.as_str()));
        let _ = tokio::task::spawn_blocking(move || {
            if let (Ok(a), Ok(b)) = (fs::symlink_metadata(&from), fs::symlink_metadata(&to))
                && same_file(&a, &b)
            {
                let _ = fs::remove_file(&from);
            }
        })
        .await;
    }

    /// Deletes the file at `key` only if `unchanged` accepts it, judged on the file taken
    /// from its name (renamed onto a reserved staging name `key#n`), so the file judged is
    /// the file deleted: a check of the name followed by an unlink would delete a file
    /// the app renamed into place in between. A rejected file goes back to its name,
    /// unless the app has put another file there since, which replaced it as a rename
    /// into place would. Returns whether the file is gone (one already gone counts).
    pub async fn remove_if(
        &self,
        key: &Key,
        unchanged: impl FnOnce(&Path, &fs::Metadata) -> Result<bool> + Send + 'static,
    ) -> Result<bool> {
        let path = self.canonical.join(key.as_str());
        let key = key.clone();
        tokio::task::spawn_blocking(move || remove_if(&path, &key, unchanged))
            .await
            .map_err(|e| Error::task_failed("file-system", e))?
    }

    /// Files under `prefix`, after `start_after`, in byte order of their keys, at most
    /// `limit`, with their size and mtime. Directories are read one at a time so memory
    /// stays bounded by the tree's depth; files are stat'ed, never opened, so an
    /// unreadable file is still listed (and fails only when read).
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Key, fs::Metadata)>> {
        let (root, prefix) = (self.canonical.clone(), prefix.to_owned());
        let start_after = start_after.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut files = Vec::new();
            for key in SortedWalk::new(root.clone(), &prefix, start_after) {
                let key = key?;
                // A file can vanish between the walk and its stat.
                if let Ok(meta) = fs::metadata(root.join(key.as_str())) {
                    files.push((key, meta));
                }
                if files.len() == limit {
                    break;
                }
            }
            Ok(files)
        })
        .await
        .map_err(|e| Error::task_failed("file-system", e))?
    }
}

/// A file [`LocalRoot::copy`] made, and whether its source, as opened, kept its size
/// and mtime from before its first byte was read to after its last (an app rewriting
/// it in place meanwhile; one that replaced it left the opened file as it was).
pub struct CopiedFile {
    pub source: fs::Metadata,
    pub copy: fs::Metadata,
    pub source_unchanged: bool,
}

fn copy_file(root: &Path, from: &Key, to: &Key) -> Result<CopiedFile> {
    let failed = |e: io::Error, key: &Key| Error::from_io(e, key.as_str());
    let mut source = fs::File::open(root.join(from.as_str())).map_err(|e| failed(e, from))?;
    let before = source.metadata().map_err(|e| failed(e, from))?;
    let dest = root.join(to.as_str());
    let (mut staged, staged_path) = create_staging(&dest).map_err(|e| failed(e, to))?;
    let copied = io::copy(&mut source, &mut staged)
        .and_then(|_| staged.metadata())
        .and_then(|copy| fs::rename(&staged_path, &dest).map(|()| copy));
    let copy = match copied {
        Ok(copy) => copy,
        Err(e) => {
            let _ = fs::remove_file(&staged_path);
            return Err(failed(e, to));
        }
    };
    let after = source.metadata().map_err(|e| failed(e, from))?;
    Ok(CopiedFile {
        source_unchanged: before.len() == after.len()
            && before.modified().ok() == after.modified().ok(),
        source: before,
        copy,
    })
}

/// A new staging file `dest#n`, its folders made when missing (again if a delete
/// pruned them meanwhile), as the store's own writes stage.
fn create_staging(dest: &Path) -> io::Result<(fs::File, PathBuf)> {
    let mut n = 0u64;
    loop {
        let mut name = dest.as_os_str().to_owned();
        name.push(format!("#{n}"));
        let path = PathBuf::from(name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dest.parent().expect("a key's file has a folder"))?;
            }
            Err(e) => return Err(e),
        }
    }
}

fn remove_if(
    path: &Path,
    key: &Key,
    unchanged: impl FnOnce(&Path, &fs::Metadata) -> Result<bool>,
) -> Result<bool> {
    let failed = |e: io::Error| Error::from_io(e, key.as_str());
    // Reserving the name first keeps the rename from replacing a staging file of
    // another writer's.
    let (_, taken) = create_staging(path).map_err(failed)?;
    if let Err(e) = fs::rename(path, &taken) {
        let _ = fs::remove_file(&taken);
        return match e.kind() {
            io::ErrorKind::NotFound => Ok(true),
            _ => Err(failed(e)),
        };
    }
    let verdict = fs::symlink_metadata(&taken)
        .map_err(failed)
        .and_then(|meta| unchanged(&taken, &meta));
    if let Ok(true) = verdict {
        fs::remove_file(&taken).map_err(failed)?;
        return Ok(true);
    }
    // A link fails where a file stands; a rename would replace it.
    match fs::hard_link(&taken, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        // A file system without hard links.
        Err(_) => {
            if fs::symlink_metadata(path).is_err() {
                return fs::rename(&taken, path).map_err(failed).and(verdict);
            }
        }
    }
    let _ = fs::remove_file(&taken);
    verdict
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    false
}

/// What an operation does with the file at a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Opens it for reading (get, head, the source of a copy).
    Read,
    /// Writes it through a staging file `name#n` (put, the target of a copy).
    Stage,
    /// Only names it (delete, the source of a rename), which any existing file name
    /// allows.
    Name,
    /// Moves a file onto it (the target of a rename): no staging file, but a folder in
    /// its place, or a file in place of a folder it needs, is refused as for `Stage`.
    Replace,
}

fn check_inside(canonical_root: &Path, key: &Key, access: Access) -> Result<()> {
    if access == Access::Stage {
        key.check_local_write()?;
    }
    // Messages name the folder: a file:// cloud or tier has these limits too.
    let root = canonical_root.display();
    let refused = |reason: String| Error::InvalidKey {
        key: key.to_string(),
        reason: reason.into(),
    };
    let mut path = canonical_root.to_owned();
    let mut file_type = None;
    for segment in key.as_str().split('/') {
        path.push(segment);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target =
                    fs::canonicalize(&path).map_err(|e| Error::from_io(e, key.as_str()))?;
                if !target.starts_with(canonical_root) {
                    return Err(refused(format!(
                        "key leads outside {root} through a symlink"
                    )));
                }
                file_type = fs::metadata(&target).ok().map(|m| m.file_type());
            }
            Ok(meta) => file_type = Some(meta.file_type()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            // The store's own folder is a file now: the store is broken, not the key,
            // and in dual mode the other side takes over.
            Err(e)
                if e.kind() == io::ErrorKind::NotADirectory
                    && path.parent() == Some(canonical_root) =>
            {
                return Err(Error::Unavailable(format!(
                    "{root}: the store's folder is not a folder any more"
                )));
            }
            // A file stands where the key needs a folder: no such key here, and none
            // can be written until that file goes.
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                return Err(match access {
                    Access::Stage | Access::Replace => {
                        refused(format!("a folder the key needs is a file in {root}"))
                    }
                    Access::Read | Access::Name => Error::NotFound {
                        key: key.to_string(),
                    },
                });
            }
            Err(e) => return Err(Error::from_io(e, key.as_str())),
        }
    }
    match file_type {
        Some(t) if access == Access::Read && !(t.is_file() || t.is_dir()) => Err(Error::NotFound {
            key: key.to_string(),
        }),
        Some(t) if matches!(access, Access::Stage | Access::Replace) && t.is_dir() => {
            Err(refused(format!("the key names a folder in {root}")))
        }
        _ => Ok(()),
    }
}

/// Depth-first walk whose output is in byte order of the full key: siblings are
/// sorted by name with `/` appended to directories, which is exactly how their keys
/// compare (`a-b` < `a/…` because `-` < `/`).
struct SortedWalk {
    root: PathBuf,
    prefix: String,
    start_after: Option<String>,
    /// For each open directory: its key prefix (`""` or `"a/b/"`) and its remaining
    /// entries, reversed so that `pop` yields them in order.
    stack: Vec<(String, Vec<(String, bool)>)>,
    /// A folder that could not be read; the walk ends with it. Skipping it would let
    /// a migration report complete with files it never saw.
    unreadable: Option<Error>,
}

impl SortedWalk {
    fn new(root: PathBuf, prefix: &str, start_after: Option<String>) -> Self {
        // Start in the deepest directory the prefix names whole.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..=i]).to_owned();
        let mut walk = SortedWalk {
            root,
            prefix: prefix.to_owned(),
            start_after,
            stack: Vec::new(),
            unreadable: None,
        };
        walk.open(dir);
        walk
    }

    fn open(&mut self, dir: String) {
        let entries = match fs::read_dir(self.root.join(&dir)) {
            Ok(entries) => entries,
            // No such folder under the prefix, or one deleted since its parent was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                let shown = if dir.is_empty() {
                    "the local root"
                } else {
                    &dir
                };
                self.unreadable = Some(Error::from_io(e, shown));
                return;
            }
        };
        let mut names: Vec<(String, bool)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let kind = e.file_type().ok()?;
                let name = e.file_name().into_string().ok()?;
                // Only regular files are objects. Symlinks are not followed (they could
                // loop or leave the root); FIFOs, sockets and devices are skipped, as
                // reading one blocks or never ends.
                ((kind.is_file() || kind.is_dir()) && !(dir.is_empty() && name == STATE_DIR))
                    .then_some((name, kind.is_dir()))
            })
            .filter(|(name, is_dir)| self.wanted(&dir, name, *is_dir))
            .collect();
        names.sort_by_cached_key(|(name, is_dir)| {
            if *is_dir {
                format!("{name}/")
            } else {
                name.clone()
            }
        });
        names.reverse();
        self.stack.push((dir, names));
    }

    /// Prunes files and whole directories outside the prefix or before `start_after`.
    fn wanted(&self, dir: &str, name: &str, is_dir: bool) -> bool {
        let mut path = format!("{dir}{name}");
        if is_dir {
            path.push('/');
            let in_prefix = path.starts_with(&self.prefix) || self.prefix.starts_with(&path);
            let after = self
                .start_after
                .as_deref()
                .is_none_or(|s| s.starts_with(&path) || path.as_str() > s);
            in_prefix && after
        } else {
            path.starts_with(&self.prefix)
                && self
                    .start_after
                    .as_deref()
                    .is_none_or(|s| path.as_str() > s)
        }
    }
}

impl Iterator for SortedWalk {
    type Item = Result<Key>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.unreadable.take() {
                self.stack.clear();
                return Some(Err(e));
            }
            let (dir, entries) = self.stack.last_mut()?;
            let Some((name, is_dir)) = entries.pop() else {
                self.stack.pop();
                continue;
            };
            let path = format!("{dir}{name}");
            if is_dir {
                self.open(format!("{path}/"));
            } else if let Ok(key) = Key::parse(&path) {
                // Files whose names are not valid keys (e.g. staging files) are not objects.
                return Some(Ok(key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, f).unwrap();
        }
        dir
    }

    fn walk(dir: &Path, prefix: &str, after: Option<&str>) -> Vec<String> {
        SortedWalk::new(dir.to_owned(), prefix, after.map(str::to_owned))
            .map(|k| k.unwrap().to_string())
            .collect()
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn remove_if_deletes_only_the_file_it_judged() {
        let dir = tree(&["a/kept", "a/gone", "a/replaced"]);
        let key = |k: &str| Key::parse(k).unwrap();
        let root = dir.path().join("a");
        assert!(remove_if(&root.join("gone"), &key("a/gone"), |_, m| Ok(m.len() == 6)).unwrap());
        // Rejected: the file goes back with its bytes.
        assert!(!remove_if(&root.join("kept"), &key("a/kept"), |_, _| Ok(false)).unwrap());
        assert_eq!(fs::read(root.join("kept")).unwrap(), b"a/kept");
        // Rejected while the app put a newer file at the name: the newer file stays.
        let replaced = root.join("replaced");
        let judged = |_: &Path, _: &fs::Metadata| {
            fs::write(&replaced, b"newer").unwrap();
            Ok(false)
        };
        assert!(!remove_if(&root.join("replaced"), &key("a/replaced"), judged).unwrap());
        assert_eq!(fs::read(root.join("replaced")).unwrap(), b"newer");
        // A file already gone counts as removed; no staging name is left behind.
        assert!(remove_if(&root.join("gone"), &key("a/gone"), |_, _| Ok(false)).unwrap());
        assert_eq!(names(&root), ["kept", "replaced"]);
    }

    #[test]
    fn walk_is_in_byte_order_of_keys() {
        let files = [
            "a-b",
            "a/b",
            "a/c/d",
            "a0",
            "b",
            ".stowage/journal.db",
            "z/y#1",
        ];
        let dir = tree(&files);
        let mut expected: Vec<&str> = vec!["a-b", "a/b", "a/c/d", "a0", "b"];
        expected.sort();
        assert_eq!(walk(dir.path(), "", None), expected);
        assert_eq!(walk(dir.path(), "a/", None), ["a/b", "a/c/d"]);
        assert_eq!(walk(dir.path(), "a", Some("a/b")), ["a/c/d", "a0"]);
        assert_eq!(walk(dir.path(), "", Some("a/c/d")), ["a0", "b"]);
        assert_eq!(walk(dir.path(), "nope/", None), Vec::<String>::new());
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let outside = tree(&["secret"]);
        let dir = tree(&["in/file"]);
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("in"), dir.path().join("inner")).unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let check = |key: &str| check_inside(&root, &Key::parse(key).unwrap(), Access::Read);
        assert_eq!(check("escape/secret").unwrap_err().code(), "INVALID_KEY");
        check("inner/file").unwrap();
        check("new/dir/file").unwrap();
        assert_eq!(walk(&root, "", None), ["in/file"]);
    }

    #[test]
    fn a_file_in_place_of_the_store_folder_is_an_outage_not_a_bad_key() {
        let dir = tree(&["a/b", "root"]);
        let check = |root: &str, key: &str, access| {
            let root = fs::canonicalize(dir.path().join(root)).unwrap();
            check_inside(&root, &Key::parse(key).unwrap(), access).map_err(|e| e.code())
        };
        for access in [Access::Read, Access::Stage, Access::Replace] {
            assert_eq!(check("root", "k", access), Err("UNAVAILABLE"));
            assert_eq!(check("root", "k/deeper", access), Err("UNAVAILABLE"));
        }
        // A file where a key needs a folder, inside a sound store, is the key's.
        assert_eq!(check(".", "a/b/c", Access::Stage), Err("INVALID_KEY"));
        assert_eq!(check(".", "a/b/c", Access::Read), Err("NOT_FOUND"));
    }

    #[test]
    fn only_regular_files_are_listed() {
        let dir = tree(&["a", "d/b"]);
        let fifo = std::ffi::CString::new(
            dir.path()
                .join("d/fifo")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("socket")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("d/zero")).unwrap();
        assert_eq!(walk(dir.path(), "", None), ["a", "d/b"]);
        let root = fs::canonicalize(dir.path()).unwrap();
        for key in ["d/fifo", "socket"] {
            let key = Key::parse(key).unwrap();
            let read = check_inside(&root, &key, Access::Read).unwrap_err();
            assert_eq!(read.code(), "NOT_FOUND", "{key}");
            check_inside(&root, &key, Access::Stage).unwrap();
        }
        for key in ["a", "d", "d/b", "d/missing"] {
            check_inside(&root, &Key::parse(key).unwrap(), Access::Read).unwrap();
        }
    }

    #[test]
    fn only_staged_writes_need_room_for_the_staging_suffix() {
        let dir = tree(&[]);
        let root = fs::canonicalize(dir.path()).unwrap();
        let key = Key::parse(&"n".repeat(crate::key::MAX_SEGMENT_BYTES)).unwrap();
        let staged = check_inside(&root, &key, Access::Stage).unwrap_err();
        assert_eq!(staged.code(), "INVALID_KEY");
        check_inside(&root, &key, Access::Read).unwrap();
        check_inside(&root, &key, Access::Name).unwrap();
    }
}
