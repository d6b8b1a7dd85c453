//! Retention: keeps the published segments under a total size and a maximum age by
//! deleting the oldest first.
//!
//! The writers report every segment they publish; at start the existing tree is scanned
//! (without following symlinks) so limits hold across restarts. The scan also removes
//! hidden temporary segments left by a recorder that died mid-write without a crash
//! journal beside them (those with one are for recovery, `journal.rs`): the directory
//! lock (see [`lock_dir`]) guarantees no live recorder owns them.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use capture_schemas::Table;

use crate::dir::Dir;
use crate::journal::journal_name;

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    size: u64,
    published: SystemTime,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first.
    segments: VecDeque<Segment>,
    total: u64,
    deleted: u64,
}

/// Size and age limits over every table's segments.
#[derive(Debug)]
pub struct Retention {
    max_total_bytes: Option<u64>,
    max_age: Option<Duration>,
    state: Mutex<State>,
}

/// What the start-up scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    pub segments: u64,
    pub bytes: u64,
    pub stale_temp_removed: u64,
}

impl Retention {
    pub fn new(max_total_bytes: Option<u64>, max_age: Option<Duration>) -> Retention {
        Retention { max_total_bytes, max_age, state: Mutex::new(State::default()) }
    }

    /// No limits: nothing is ever deleted.
    pub fn unlimited() -> Retention {
        Retention::new(None, None)
    }

    /// Registers the segments already under `dir` and removes stale temporary files. A
    /// table directory that is a symlink is refused (an error naming it): the scan and
    /// retention would otherwise list, and delete, what lies wherever it points. Below the
    /// table directories, links are skipped, never followed (see `dir.rs`).
    pub fn scan(&self, dir: &Path) -> io::Result<ScanReport> {
        let mut found = Vec::new();
        let mut report = ScanReport::default();
        let root = Dir::open(dir)?;
        for table in Table::ALL {
            match root.sub(table.name()) {
                Ok(t) => walk(&t, 0, 0, &mut found, &mut report)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        found.sort_by(|a, b| (a.published, &a.path).cmp(&(b.published, &b.path)));
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for s in found {
            report.segments += 1;
            report.bytes += s.size;
            st.total += s.size;
            st.segments.push_back(s);
        }
        drop(st);
        self.enforce(None);
        Ok(report)
    }

    /// Records a segment just published and deletes what the limits no longer allow.
    pub fn published(&self, path: &Path, size: u64) {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.total += size;
            st.segments.push_back(Segment { path: path.to_path_buf(), size, published: SystemTime::now() });
        }
        self.enforce(Some(path));
    }

    /// Deletes a segment that is safe elsewhere (uploaded) and forgets it.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = st.segments.iter().position(|s| s.path == path) {
                let s = st.segments.remove(i).expect("found above");
                st.total -= s.size;
            }
        }
        delete(path)
    }

    /// The segments it knows of (those found at start, then each published), oldest
    /// first, with when each was published.
    pub fn segments(&self) -> Vec<(PathBuf, SystemTime)> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.segments.iter().map(|s| (s.path.clone(), s.published)).collect()
    }

    /// Bytes of the segments it knows of.
    pub fn total_bytes(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Segments deleted so far.
    pub fn deleted(&self) -> u64 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).deleted
    }

    /// Deletes oldest segments while over a limit; never the one just published.
    fn enforce(&self, keep: Option<&Path>) {
        let now = SystemTime::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(oldest) = st.segments.front() {
            let too_big = self.max_total_bytes.is_some_and(|m| st.total > m);
            let too_old = self.max_age.is_some_and(|m| now.duration_since(oldest.published).unwrap_or_default() > m);
            if !(too_big || too_old) || Some(oldest.path.as_path()) == keep {
                break;
            }
            let s = st.segments.pop_front().expect("front exists");
            st.total -= s.size;
            match delete(&s.path) {
                Ok(()) => {
                    st.deleted += 1;
                    log::debug!("retention: deleted {}", s.path.display());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("retention: cannot delete {}: {e}", s.path.display()),
            }
        }
    }
}

/// Deletes `ROOT/table/host=/dt=/hr=/name` (or `ROOT/table/dt=/hr=/name`, written before
/// the host level) through descriptors opened one name at a time without following
/// links, then the partition directories it leaves empty.
fn delete(path: &Path) -> io::Result<()> {
    let names: Vec<&str> = path.iter().rev().take(5).filter_map(|c| c.to_str()).collect();
    let not_segment = || io::Error::other("not a segment path (ROOT/table/host=/dt=/hr=/name)");
    let (levels, table) = match names.as_slice() {
        [_, _, _, host, table] if host.starts_with("host=") => (4, *table),
        [_, _, _, table, ..] => (3, *table),
        _ => return Err(not_segment()),
    };
    let root = path.ancestors().nth(levels + 1).ok_or_else(not_segment)?;
    // The directories from the table's down to the hour's.
    let mut dirs = vec![Dir::open(root)?.sub(table)?];
    for name in names[1..levels].iter().rev() {
        let next = dirs.last().expect("the table's").sub(name)?;
        dirs.push(next);
    }
    dirs.last().expect("the hour's").unlink(names[0])?;
    // Each fails harmlessly when not empty; the table's directory stays.
    for (i, name) in names[1..levels].iter().enumerate() {
        if dirs[levels - 2 - i].rmdir(name).is_err() {
            break;
        }
    }
    Ok(())
}

/// Collects `*.parquet` segments under a table directory (`host=*/dt=*/hr=*`, or `dt=*/hr=*`
/// in captures written before the host level), skipping links and removing hidden
/// `.*.parquet.tmp` leftovers. `leaf` is the depth of the hour directories (0 at the
/// table's: found from the first level's names).
fn walk(dir: &Dir, depth: usize, leaf: usize, out: &mut Vec<Segment>, report: &mut ScanReport) -> io::Result<()> {
    for (name, ft) in dir.entries()? {
        let Some(name) = name.to_str() else { continue };
        if ft.is_dir() && (depth < leaf || depth == 0) {
            let leaf = if depth == 0 {
                if name.starts_with("host=") {
                    3
                } else {
                    2
                }
            } else {
                leaf
            };
            match dir.sub(name) {
                Ok(sub) => walk(&sub, depth + 1, leaf, out, report)?,
                // Replaced by something else since it was listed: not ours to read.
                Err(e) => log::warn!("skipping {}: {e}", dir.path().join(name).display()),
            }
        } else if ft.is_file() && depth == leaf && depth > 0 {
            if name.starts_with('.') && name.ends_with(".parquet.tmp") {
                // One with a journal is kept for recovery (see `journal.rs`).
                let stem = &name[1..name.len() - ".parquet.tmp".len()];
                if dir.stat(&journal_name(stem)).is_ok() {
                    continue;
                }
                if dir.unlink(name).is_ok() {
                    report.stale_temp_removed += 1;
                }
            } else if !name.starts_with('.') && name.ends_with(".parquet") {
                let (size, published) = dir.stat(name)?;
                out.push(Segment { path: dir.path().join(name), size, published });
            }
        }
    }
    Ok(())
}

/// Refuses a `.capture.lock` that is a symbolic link, before anything else starts (the
/// lock itself is opened with `O_NOFOLLOW` too).
pub fn check_lock_path(dir: &Path) -> io::Result<()> {
    let path = dir.join(".capture.lock");
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(lock_is_link(&path)),
        _ => Ok(()),
    }
}

fn lock_is_link(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is a symbolic link: the recorder follows no link in its capture directory (remove it)",
        path.display()
    ))
}

/// Takes an exclusive lock on `dir/.capture.lock` so two recorders never share a
/// directory; the lock lives as long as the returned file.
pub fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(".capture.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => lock_is_link(&path),
            _ => io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        })?;
    // SAFETY: `f` is an open file descriptor for the duration of the call.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(io::Error::other(format!(
                "another recorder is writing to {} (it holds {}); stop it or choose another --output-dir",
                dir.display(),
                path.display()
            )));
        }
        return Err(e);
    }
    Ok(f)
}
