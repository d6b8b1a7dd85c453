//! The capture directory, reached through held descriptors one name at a time.
//!
//! Every file the recorder creates, renames, lists or deletes under its capture directory
//! is reached from an open descriptor of that directory, one component at a time, with
//! `O_NOFOLLOW` (`openat`, `mkdirat`, `renameat2`, `unlinkat`): a symbolic link planted
//! anywhere below it (a table or partition directory, a segment's name) is refused with
//! `ELOOP`/`ENOTDIR`, never followed, even when it appears between a check and a use.

use std::ffi::{CString, OsString};
use std::fs::{File, FileType};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An open directory and the path it was reached by (for messages only: never resolved).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn cstr(name: &str) -> io::Result<CString> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a plain file name")));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a file name with a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A link where a directory was expected gives ELOOP (or ENOTDIR, for a link to a
/// file): said plainly.
fn no_link(e: io::Error, path: &Path) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => io::Error::other(format!(
            "{} is a symbolic link or not a directory: the recorder follows no link in its capture directory (remove it)",
            path.display()
        )),
        _ => e,
    }
}

const DIR_FLAGS: libc::c_int = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

impl Dir {
    /// Opens the capture directory itself (its last component must not be a link).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        let fd = check(unsafe { libc::open(c.as_ptr(), DIR_FLAGS) }).map_err(|e| no_link(e, path))?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The subdirectory `name`, which must be a directory, not a link to one.
    pub fn sub(&self, name: &str) -> io::Result<Dir> {
        let c = cstr(name)?;
        let path = self.path.join(name);
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), DIR_FLAGS) })
            .map_err(|e| no_link(e, &path))?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(Dir { fd: unsafe { OwnedFd::from_raw_fd(fd) }, path })
    }

    /// The subdirectory `name`, made (mode 0750) when missing.
    pub fn sub_or_create(&self, name: &str) -> io::Result<Dir> {
        let c = cstr(name)?;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        match check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), 0o750) }) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.sub(name)
    }

    /// A new file `name` (mode `mode`), never an existing one nor through a link.
    pub fn create_new(&self, name: &str, mode: libc::mode_t) -> io::Result<File> {
        let c = cstr(name)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// The file `name` opened for appending, created (mode `mode`) if missing; never
    /// through a link.
    pub fn open_append(&self, name: &str, mode: libc::mode_t) -> io::Result<File> {
        let c = cstr(name)?;
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Renames `from` to `to` in this directory, never replacing an existing `to`.
    pub fn rename_noreplace(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (cstr(from)?, cstr(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        check(unsafe { libc::renameat2(fd, f.as_ptr(), fd, t.as_ptr(), libc::RENAME_NOREPLACE) }).map(drop)
    }

    /// Renames `from` over `to` in this directory (for the recorder's own hidden files; a
    /// link named `to` is replaced itself, never followed).
    pub fn rename_replace(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (cstr(from)?, cstr(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        check(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) }).map(drop)
    }

    /// Opens the regular file `name` for reading, not through a link.
    pub fn open_read(&self, name: &str) -> io::Result<File> {
        let c = cstr(name)?;
        // O_NONBLOCK: a FIFO planted under that name cannot make the open wait.
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Removes the file `name` (a link named so is removed itself, never what it points to).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// Removes the empty directory `name`.
    pub fn rmdir(&self, name: &str) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: a valid directory descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
    }

    /// Flushes the directory's entries to disk (after a rename).
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: a valid descriptor.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }

    /// The entries' names and types (links reported as links), in name order. Read
    /// through the descriptor (`/proc/self/fd/N` is this very directory, not a path
    /// looked up again).
    pub fn entries(&self) -> io::Result<Vec<(OsString, FileType)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))? {
            let e = e?;
            out.push((e.file_name(), e.file_type()?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Size and modification time of the file `name`, not following a link.
    pub fn stat(&self, name: &str) -> io::Result<(u64, std::time::SystemTime)> {
        let c = cstr(name)?;
        // SAFETY: `st` is plain data, filled by the call.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid directory descriptor, NUL-terminated name and a stat buffer.
        check(unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec.clamp(0, 999_999_999) as u32);
        Ok((st.st_size as u64, mtime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        let root = t.path().join("cap");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("file")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root.join("f.parquet")).unwrap();
        let d = Dir::open(&root).unwrap();
        let e = d.sub("file").unwrap_err().to_string();
        assert!(e.contains("cap/file is a symbolic link"), "{e}");
        assert!(d.sub_or_create("file").is_err());
        assert!(d.create_new("f.parquet", 0o640).is_err(), "an existing link is not written through");
        d.unlink("f.parquet").unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep", "the link went, not its target");
        assert!(Dir::open(&root.join("file")).is_err());
        assert!(d.sub("..").is_err() && d.unlink("a/b").is_err());
        let sub = d.sub_or_create("exec").unwrap();
        std::mem::drop(sub.create_new(".x.tmp", 0o640).unwrap());
        sub.rename_noreplace(".x.tmp", "x.parquet").unwrap();
        let names: Vec<_> = sub.entries().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["x.parquet"]);
        assert_eq!(sub.stat("x.parquet").unwrap().0, 0);
    }
}
