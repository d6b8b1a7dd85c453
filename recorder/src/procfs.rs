//! Processes already running when the recorder starts, read from `/proc` as `exec`
//! records (flagged `EXEC_FROM_PROCFS`), so every capture is self-contained: ancestry
//! joins work for processes started before the recorder.
//!
//! The records are the same bytes the exec probe writes and go through the same decoder.
//! Their `ktime_ns` (and so `ts`) is when `/proc` was read; `start_ktime_ns` is the
//! process start, at the 10 ms resolution `/proc` gives, which [`abi::exec_id`] uses too,
//! so a process's key is the same whether it was seen here or by the probe.
//! Kernel threads are skipped. This runs once, at start: it allocates.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use capture_schemas::abi::{self, Pod};

use crate::synth::exec_record;

const PF_KTHREAD: u32 = 0x0020_0000;
const NS_PER_TICK: u64 = 1_000_000_000 / abi::USER_HZ;

/// Fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    /// Task flags (`PF_*`).
    pub flags: u32,
    pub tty_nr: u32,
    pub start_ticks: u64,
}

/// Parses `/proc/<pid>/stat`; the command name may itself hold spaces and parentheses.
pub fn parse_stat(s: &str) -> Option<Stat> {
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state).
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        flags: rest.get(6)?.parse().ok()?,
        tty_nr: rest.get(4)?.parse().ok()?,
        start_ticks: rest.get(19)?.parse().ok()?,
    })
}

/// The tty name of a `tty_nr` (`pts/3`, `tty1`, `ttyS0`), empty when none or unknown.
pub fn tty_name(tty_nr: u32) -> String {
    if tty_nr == 0 {
        return String::new();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => String::new(),
    }
}

fn status_ids(status: &str, key: &str) -> Option<(u32, u32)> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let mut it = line[key.len()..].split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn ns_inode(proc_pid: &Path, ns: &str) -> u32 {
    fs::metadata(proc_pid.join("ns").join(ns)).map(|m| m.ino() as u32).unwrap_or(0)
}

/// The cgroup v2 id of a process: the inode of its cgroup directory.
fn cgroup_id(proc_pid: &Path) -> u64 {
    let Ok(s) = fs::read_to_string(proc_pid.join("cgroup")) else { return 0 };
    let Some(path) = s.lines().find_map(|l| l.strip_prefix("0::")) else { return 0 };
    fs::metadata(format!("/sys/fs/cgroup{path}")).map(|m| m.ino()).unwrap_or(0)
}

/// Reads up to `max` bytes of a NUL-separated `/proc` file; `true` when it was cut.
fn read_capped(path: &Path, max: usize) -> (Vec<u8>, bool) {
    let mut v = fs::read(path).unwrap_or_default();
    let cut = v.len() > max;
    v.truncate(max);
    (v, cut)
}

/// Reads every running process but `skip_pid` (the recorder) into `out`, one record
/// each; returns how many.
pub fn scan(out: &mut Vec<Vec<u8>>, args_max: usize, now_boot_ns: u64, skip_pid: u32) -> usize {
    let Ok(rd) = fs::read_dir("/proc") else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == skip_pid {
            continue;
        }
        if let Some(rec) = process_record(pid, args_max, now_boot_ns) {
            out.push(rec);
            n += 1;
        }
    }
    n
}

/// The `exec` record of one running process, or `None` for kernel threads and processes
/// that exited while being read.
pub fn process_record(pid: u32, args_max: usize, now_boot_ns: u64) -> Option<Vec<u8>> {
    let dir = Path::new("/proc").join(pid.to_string());
    let stat = parse_stat(&fs::read_to_string(dir.join("stat")).ok()?)?;
    if stat.flags & PF_KTHREAD != 0 {
        return None;
    }
    // Unreadable for some processes even to root (other security contexts): then empty.
    let exe = fs::read_link(dir.join("exe")).unwrap_or_default();
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let (uid, euid) = status_ids(&status, "Uid:")?;
    let (gid, _) = status_ids(&status, "Gid:")?;
    let loginuid =
        fs::read_to_string(dir.join("loginuid")).ok().and_then(|s| s.trim().parse::<u32>().ok()).unwrap_or(u32::MAX);
    let parent_ticks = fs::read_to_string(format!("/proc/{}/stat", stat.ppid))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0, |s| s.start_ticks);
    let (argv, argv_cut) = read_capped(&dir.join("cmdline"), args_max);
    let (envp, envp_cut) = read_capped(&dir.join("environ"), args_max);
    let count =
        |b: &[u8]| b.iter().filter(|&&c| c == 0).count() as u32 + u32::from(!b.is_empty() && b.last() != Some(&0));
    let mut comm = [0u8; 16];
    let c = stat.comm.as_bytes();
    comm[..c.len().min(15)].copy_from_slice(&c[..c.len().min(15)]);
    let mut tty = [0u8; 32];
    let t = tty_name(stat.tty_nr);
    tty[..t.len().min(31)].copy_from_slice(&t.as_bytes()[..t.len().min(31)]);
    let mut e = abi::Exec {
        hdr: abi::Hdr {
            kind: abi::KIND_EXEC,
            abi: abi::ABI_VERSION,
            ktime_ns: now_boot_ns,
            start_ns: stat.start_ticks * NS_PER_TICK,
            parent_start_ns: parent_ticks * NS_PER_TICK,
            cgroup_id: cgroup_id(&dir),
            pid,
            tid: pid,
            ppid: stat.ppid,
            uid,
            gid,
            comm,
            ..Default::default()
        },
        euid,
        loginuid,
        flags: abi::EXEC_FROM_PROCFS,
        argc: count(&argv),
        envc: count(&envp),
        pidns: ns_inode(&dir, "pid"),
        mntns: ns_inode(&dir, "mnt"),
        netns: ns_inode(&dir, "net"),
        tty,
        ..Default::default()
    };
    if argv_cut {
        e.flags |= abi::EXEC_ARGV_TRUNCATED;
    }
    if envp_cut {
        e.flags |= abi::EXEC_ENVP_TRUNCATED;
    }
    let mut rec = Vec::with_capacity(core::mem::size_of::<abi::Exec>() + argv.len() + envp.len() + 64);
    use std::os::unix::ffi::OsStrExt;
    let exe = exe.as_os_str().as_bytes();
    exec_record(&mut rec, e, exe, &argv, &envp, exe);
    debug_assert!(abi::Exec::read(&rec).is_some());
    Some(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm_and_tty_names() {
        let s = "1234 (my (odd) cmd) S 1 1234 1234 34816 1234 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5678 1 2 3";
        let st = parse_stat(s).unwrap();
        assert_eq!(st, Stat { comm: "my (odd) cmd".into(), ppid: 1, flags: 4194560, tty_nr: 34816, start_ticks: 5678 });
        assert_eq!(tty_name(34816), "pts/0");
        assert_eq!(tty_name(34819), "pts/3");
        assert_eq!(tty_name(1025), "tty1");
        assert_eq!(tty_name(1088), "ttyS0");
        assert_eq!(tty_name(0), "");
    }
}
