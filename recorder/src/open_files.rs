//! The paths of files open now, from their open records, so a close record can be named.
//!
//! The file probe records close when the open file's last descriptor is gone (close, exit,
//! exec), when the kernel has released the file or is about to, and its path can no longer
//! be read; the close row takes the absolute path of the file's open row instead. Both
//! records carry the open file's key (its struct file), whichever process and descriptor
//! the close came through. The reader merges the probe's per-CPU rings in time order
//! (`ring.rs`), so an open is always decoded before the close of the same file.
//!
//! No allocation per event in the steady state: path buffers are reused through a free
//! list, and the table only grows to the most files open at once (bounded by
//! [`OpenFiles::CAPACITY`], the size of the kernel's table of open files).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes an open-file key (the address of a struct file, chosen by the kernel's slab
/// allocator, not by a process) with one folded 64x64-bit multiply: all its bits reach
/// the low bits the table indexes by, where SipHash cost 7% of the file table's decode.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline]
    fn write_u64(&mut self, key: u64) {
        let m = u128::from(key ^ self.0) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub struct OpenFiles {
    /// The order it was opened in (also its `file_id`, less the run's base) and its
    /// absolute path, by open-file key.
    paths: HashMap<u64, (u64, Vec<u8>), BuildHasherDefault<KeyHasher>>,
    free: Vec<Vec<u8>>,
    seq: u64,
    base: i64,
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
    /// As many files as the kernel tracks (`files` in bpf/file_ops.bpf.c).
    pub const CAPACITY: usize = 65536;

    pub fn new() -> OpenFiles {
        Self::with_base(0)
    }

    /// `base` starts this run's `file_id`s (see [`OpenFiles::run_base`]).
    pub fn with_base(base: i64) -> OpenFiles {
        OpenFiles { paths: HashMap::default(), free: Vec::new(), seq: 0, base }
    }

    /// A run's first `file_id`: its start in Unix seconds, shifted 24 bits, so runs that
    /// start in different seconds do not share ids (unless one opens 16 M files per second
    /// it runs), and ids within a run count up by one (they cost almost nothing on disk).
    pub fn run_base(unix_secs: u64) -> i64 {
        ((unix_secs & ((1 << 38) - 1)) << 24) as i64
    }

    /// Keeps the absolute path the open file `key` was opened by (see [`abs_parts`]).
    /// When the table is full (the kernel lost files from its own table, or their close
    /// records were lost), the older half is forgotten.
    pub fn opened(&mut self, key: u64, abs: [&[u8]; 3]) -> i64 {
        if self.paths.len() >= Self::CAPACITY && !self.paths.contains_key(&key) {
            self.forget_older_half();
        }
        let mut buf = self.free.pop().unwrap_or_default();
        buf.clear();
        for part in abs {
            buf.extend_from_slice(part);
        }
        self.seq += 1;
        if let Some((_, old)) = self.paths.insert(key, (self.seq, buf)) {
            // The kernel reused the struct file of a file whose close was not seen.
            self.free.push(old);
        }
        self.base + self.seq as i64
    }

    /// The `file_id` and path of the open file `key`, still open, if its open was seen.
    pub fn get(&self, key: u64) -> Option<(i64, &[u8])> {
        self.paths.get(&key).map(|(seq, p)| (self.base + *seq as i64, p.as_slice()))
    }

    /// The `file_id` and path of the open file `key`, if its open was seen; hand the
    /// path back with [`OpenFiles::recycle`] once used.
    pub fn closed(&mut self, key: u64) -> Option<(i64, Vec<u8>)> {
        self.paths.remove(&key).map(|(seq, p)| (self.base + seq as i64, p))
    }

    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }

    fn forget_older_half(&mut self) {
        let mut seqs: Vec<u64> = self.paths.values().map(|(s, _)| *s).collect();
        let mid = seqs.len() / 2;
        let (_, cut, _) = seqs.select_nth_unstable(mid);
        let cut = *cut;
        let free = &mut self.free;
        self.paths.retain(|_, (s, p)| {
            let keep = *s >= cut;
            if !keep {
                free.push(std::mem::take(p));
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
        let open = |t: &mut OpenFiles, key, dir: &[u8], path: &[u8]| t.opened(key, abs_parts(dir, path).unwrap());
        assert_eq!(abs_parts(b"", b"rel"), None, "relative to an unknown directory");
        open(&mut t, 0xa0, b"", b"/etc/hosts");
        open(&mut t, 0xa8, b"/home/u", b"notes.txt");
        open(&mut t, 0xb0, b"/", b"tmp/x");
        assert_eq!(t.get(0xa8), Some((2, &b"/home/u/notes.txt"[..])), "ids count up from the base");
        assert_eq!(t.closed(0xa8), Some((2, b"/home/u/notes.txt".to_vec())));
        assert_eq!(t.closed(0xb0), Some((3, b"/tmp/x".to_vec())));
        assert_eq!(t.closed(0xa0), Some((1, b"/etc/hosts".to_vec())));
        assert_eq!(t.closed(0xa0), None, "closed twice");
        assert!(t.paths.is_empty());
    }

    #[test]
    fn a_reused_file_names_the_newer_one_and_buffers_are_reused() {
        let mut t = OpenFiles::new();
        t.opened(5, [b"", b"", b"/a"]);
        t.opened(5, [b"", b"", b"/b"]);
        let (id, p) = t.closed(5).unwrap();
        assert_eq!((id, p.as_slice()), (2, &b"/b"[..]), "the newer open's id");
        t.recycle(p);
        assert_eq!(t.free.len(), 2, "the replaced and the closed buffer are both kept");
        t.opened(6, [b"", b"", b"/c"]);
        assert_eq!(t.free.len(), 1);
    }

    #[test]
    fn a_full_table_forgets_the_older_half() {
        let mut t = OpenFiles::new();
        for key in 0..OpenFiles::CAPACITY as u64 {
            t.opened(key, [b"", b"", b"/old"]);
        }
        t.opened(u64::MAX, [b"", b"", b"/new"]);
        assert_eq!(t.paths.len(), OpenFiles::CAPACITY / 2 + 1);
        assert_eq!(t.get(u64::MAX).map(|(_, p)| p), Some(&b"/new"[..]));
        assert_eq!(t.get(0), None, "the oldest is forgotten");
        assert_eq!(
            t.get(OpenFiles::CAPACITY as u64 - 1).map(|(_, p)| p),
            Some(&b"/old"[..]),
            "the newest half is kept"
        );
    }
}
