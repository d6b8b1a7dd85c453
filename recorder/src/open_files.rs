//! The paths of files open now, from their open records, so a close record can be named.
//!
//! The file probe records close at `sys_exit`, when the kernel has already released the
//! file and its path can no longer be read; the close row takes the absolute path of the
//! file's open row instead. The reader merges the probe's per-CPU rings in time order
//! (`ring.rs`), so an open is always decoded before the close of the same descriptor.
//!
//! No allocation per event in the steady state: path buffers are reused through a free
//! list, and the table only grows to the most files open at once (bounded by
//! [`OpenFiles::CAPACITY`], the size of the kernel's table of open files).

use std::collections::HashMap;

pub struct OpenFiles {
    /// Absolute path by (pid << 32 | fd).
    paths: HashMap<u64, Vec<u8>>,
    free: Vec<Vec<u8>>,
}

fn key(pid: u32, fd: i32) -> u64 {
    (u64::from(pid) << 32) | u64::from(fd as u32)
}

/// The absolute path of `path` given relative to `dir`, as the pieces to concatenate:
/// `path` itself when absolute, `dir` + `/` + `path` when relative and `dir` is known.
pub fn abs_parts<'a>(dir: &'a [u8], path: &'a [u8]) -> Option<[&'a [u8]; 3]> {
    if path.first() == Some(&b'/') {
        Some([b"", b"", path])
    } else if dir.is_empty() {
        None
    } else {
        Some([dir, if dir.last() == Some(&b'/') { b"" } else { b"/" }, path])
    }
}

impl OpenFiles {
    /// As many files as the kernel tracks (`fds` in bpf/file_ops.bpf.c).
    pub const CAPACITY: usize = 65536;

    pub fn new() -> OpenFiles {
        OpenFiles { paths: HashMap::new(), free: Vec::new() }
    }

    /// Keeps the absolute path `fd` of `pid` was opened by (see [`abs_parts`]). A close
    /// finds none when the path was relative to an unknown directory, or when the table is
    /// full of the files of live processes.
    pub fn opened(&mut self, pid: u32, fd: i32, abs: [&[u8]; 3]) {
        if self.paths.len() >= Self::CAPACITY && !self.paths.contains_key(&key(pid, fd)) {
            self.forget_exited();
            if self.paths.len() >= Self::CAPACITY {
                return;
            }
        }
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        for part in abs {
            buf.extend_from_slice(part);
        }
        if let Some(old) = self.paths.insert(key(pid, fd), buf) {
            // The descriptor was reused without a close we saw (dup2, exec, a lost record).
            self.free.push(old);
        }
    }

    /// The path `fd` of `pid` was opened by, if its open was seen; hand it back with
    /// [`OpenFiles::recycle`] once used.
    pub fn closed(&mut self, pid: u32, fd: i32) -> Option<Vec<u8>> {
        self.paths.remove(&key(pid, fd))
    }

    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }

    /// Drops the files of processes that have exited without closing them (their close is
    /// never recorded). Runs only when the table is full: one `stat` per process in it.
    fn forget_exited(&mut self) {
        let mut alive: HashMap<u32, bool> = HashMap::new();
        let free = &mut self.free;
        self.paths.retain(|k, v| {
            let pid = (k >> 32) as u32;
            let keep = *alive.entry(pid).or_insert_with(|| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if !keep {
                free.push(std::mem::take(v));
            }
            keep
        });
    }
}

impl Default for OpenFiles {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_takes_the_path_its_open_had() {
        let mut t = OpenFiles::new();
        let open =
            |t: &mut OpenFiles, pid, fd, dir: &[u8], path: &[u8]| t.opened(pid, fd, abs_parts(dir, path).unwrap());
        assert_eq!(abs_parts(b"", b"rel"), None, "relative to an unknown directory");
        open(&mut t, 10, 3, b"", b"/etc/hosts");
        open(&mut t, 10, 4, b"/home/u", b"notes.txt");
        open(&mut t, 11, 3, b"/", b"tmp/x");
        assert_eq!(t.closed(10, 4).as_deref(), Some(&b"/home/u/notes.txt"[..]));
        assert_eq!(t.closed(11, 3).as_deref(), Some(&b"/tmp/x"[..]));
        assert_eq!(t.closed(10, 3).as_deref(), Some(&b"/etc/hosts"[..]));
        assert_eq!(t.closed(10, 3), None, "closed twice");
        assert!(t.paths.is_empty());
    }

    #[test]
    fn a_reused_descriptor_names_the_newer_file_and_buffers_are_reused() {
        let mut t = OpenFiles::new();
        t.opened(1, 5, [b"", b"", b"/a"]);
        t.opened(1, 5, [b"", b"", b"/b"]);
        let p = t.closed(1, 5).unwrap();
        assert_eq!(p, b"/b");
        t.recycle(p);
        assert_eq!(t.free.len(), 2, "the replaced and the closed buffer are both kept");
        t.opened(1, 6, [b"", b"", b"/c"]);
        assert_eq!(t.free.len(), 1);
    }

    #[test]
    fn a_full_table_forgets_exited_processes_first() {
        let mut t = OpenFiles::new();
        // pid 0x7fff_fff0 is above pid_max's limit: never a live process.
        for fd in 0..OpenFiles::CAPACITY as i32 {
            t.opened(0x7fff_fff0, fd, [b"", b"", b"/gone"]);
        }
        let me = std::process::id();
        t.opened(me, 1, [b"", b"", b"/live"]);
        assert_eq!(t.paths.len(), 1);
        assert_eq!(t.closed(me, 1).as_deref(), Some(&b"/live"[..]));
        for fd in 0..OpenFiles::CAPACITY as i32 {
            t.opened(me, fd, [b"", b"", b"/live"]);
        }
        t.opened(me, -2, [b"", b"", b"/one too many"]);
        assert_eq!(t.closed(me, -2), None, "not kept: the table is full of live files");
    }
}
