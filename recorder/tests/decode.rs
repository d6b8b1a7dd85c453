//! Decoder round trips for every record kind, and malformed records counted, not panicking.

use agent_linux::abi::{self, Pod};
use agent_linux::decode::{ArgvMode, DecodeError, Decoder, EnvpMode, REDACTED};
use agent_linux::synth::{self, Answer, Task};
use agent_linux::{Probe, Table};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};

const SEED: u64 = 0x5eed;

fn task() -> Task {
    Task {
        pid: 4242,
        tid: 4243,
        ppid: 4000,
        uid: 1000,
        gid: 100,
        comm: "python3".into(),
        start_ns: 5_000_000_000,
        parent_start_ns: 4_000_000_000,
        cgroup_id: 777,
    }
}

fn i64s(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    b.column_by_name(name).unwrap().as_primitive::<Int64Type>().iter().collect()
}
fn i32s(b: &RecordBatch, name: &str) -> Vec<Option<i32>> {
    b.column_by_name(name).unwrap().as_primitive::<Int32Type>().iter().collect()
}
fn strs(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    b.column_by_name(name).unwrap().as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect()
}
fn bools(b: &RecordBatch, name: &str) -> Vec<Option<bool>> {
    b.column_by_name(name).unwrap().as_boolean().iter().collect()
}
fn lists(b: &RecordBatch, name: &str) -> Vec<Vec<String>> {
    let l = b.column_by_name(name).unwrap().as_list::<i32>();
    (0..l.len()).map(|i| l.value(i).as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect()).collect()
}

fn decode_one(probe: Probe, rec: &[u8], envp: EnvpMode) -> (Decoder, Table) {
    let mut d = Decoder::new(16, SEED, envp);
    let t = d.decode(probe, rec).expect("decodes");
    (d, t)
}

fn check_common(b: &RecordBatch, ktime: u64, offset_ns: i64) {
    let t = task();
    assert_eq!(i64s(b, "ktime_ns"), vec![Some(ktime as i64)]);
    let ts = b.column_by_name("ts").unwrap().as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), (ktime as i64 + offset_ns) / 1000);
    assert_eq!(i32s(b, "pid"), vec![Some(4242)]);
    assert_eq!(i32s(b, "tid"), vec![Some(4243)]);
    assert_eq!(i32s(b, "ppid"), vec![Some(4000)]);
    assert_eq!(i64s(b, "uid"), vec![Some(1000)]);
    assert_eq!(i64s(b, "gid"), vec![Some(100)]);
    assert_eq!(strs(b, "comm"), vec![Some(t.comm.clone())]);
    assert_eq!(i64s(b, "exec_id"), vec![Some(abi::exec_id(SEED, t.pid, t.start_ns))]);
    assert_eq!(i64s(b, "cgroup_id"), vec![Some(777)]);
}

const OFFSET: i64 = 1_764_000_000_000_000_000;

#[test]
fn exec_round_trip_with_redaction() {
    let mut e = abi::Exec { hdr: task().hdr(abi::KIND_EXEC, 9_000_000_123), ..Default::default() };
    e.euid = 0;
    e.loginuid = 1000;
    e.argc = 7;
    e.envc = 3;
    e.flags = abi::EXEC_ENVP_TRUNCATED;
    e.pidns = 11;
    e.mntns = 12;
    e.netns = 13;
    e.tty[..5].copy_from_slice(b"pts/3");
    let argv = synth::nul_join(&["python3", "-c", "", "--password", "pw1", "DB_PASSWORD=pw2", "https://u:pw3@h/x"]);
    let envp = synth::nul_join(&["HOME=/root", "API_TOKEN=hunter2", "DATABASE_URL=postgres://u:pw4@h/db"]);
    let mut rec = Vec::new();
    synth::exec_record(&mut rec, e, b"/usr/bin/python3", &argv, &envp, b"/usr/bin/python3.11");

    let (mut d, t) = decode_one(Probe::Exec, &rec, EnvpMode::Redacted);
    assert_eq!(t, Table::Exec);
    let b = d.builders.finish(Table::Exec, OFFSET).unwrap();
    check_common(&b, 9_000_000_123, OFFSET);
    assert_eq!(i64s(&b, "parent_exec_id"), vec![Some(abi::exec_id(SEED, 4000, 4_000_000_000))]);
    assert_eq!(i64s(&b, "start_ktime_ns"), vec![Some(5_000_000_000)]);
    assert_eq!(i64s(&b, "euid"), vec![Some(0)]);
    assert_eq!(i64s(&b, "loginuid"), vec![Some(1000)]);
    assert_eq!(strs(&b, "path"), vec![Some("/usr/bin/python3".into())]);
    let r = REDACTED;
    assert_eq!(
        lists(&b, "argv"),
        vec![vec![
            "python3".to_string(),
            "-c".into(),
            "".into(),
            "--password".into(),
            r.into(),
            format!("DB_PASSWORD={r}"),
            format!("https://u:{r}@h/x")
        ]]
    );
    assert_eq!(
        lists(&b, "envp"),
        vec![vec!["HOME=/root".to_string(), format!("API_TOKEN={r}"), format!("DATABASE_URL=postgres://u:{r}@h/db")]]
    );
    assert_eq!(i32s(&b, "argc"), vec![Some(7)]);
    assert_eq!(bools(&b, "argv_truncated"), vec![Some(false)]);
    assert_eq!(bools(&b, "envp_truncated"), vec![Some(true)]);
    assert_eq!(strs(&b, "tty"), vec![Some("pts/3".into())]);
    assert_eq!(i64s(&b, "netns"), vec![Some(13)]);
    assert_eq!(bools(&b, "from_procfs"), vec![Some(false)]);

    // The same record with full arguments, full and no environment.
    let mut d = Decoder::new(16, SEED, EnvpMode::Full).with_argv(ArgvMode::Full);
    d.decode(Probe::Exec, &rec).unwrap();
    let b = d.builders.finish(Table::Exec, OFFSET).unwrap();
    assert_eq!(lists(&b, "envp")[0][1..], ["API_TOKEN=hunter2", "DATABASE_URL=postgres://u:pw4@h/db"]);
    assert_eq!(lists(&b, "argv")[0][4..], ["pw1", "DB_PASSWORD=pw2", "https://u:pw3@h/x"]);
    let (mut d, _) = decode_one(Probe::Exec, &rec, EnvpMode::None);
    let b = d.builders.finish(Table::Exec, OFFSET).unwrap();
    assert!(lists(&b, "envp")[0].is_empty());
}

#[test]
fn truncated_argv_keeps_the_partial_last_string() {
    let mut e = abi::Exec { hdr: task().hdr(abi::KIND_EXEC, 1), ..Default::default() };
    e.flags = abi::EXEC_ARGV_TRUNCATED;
    e.loginuid = u32::MAX;
    let mut rec = Vec::new();
    synth::exec_record(&mut rec, e, b"/bin/echo", b"echo\0aaaa\0bb", b"", b"");
    let (mut d, _) = decode_one(Probe::Exec, &rec, EnvpMode::Redacted);
    let b = d.builders.finish(Table::Exec, 0).unwrap();
    assert_eq!(lists(&b, "argv"), vec![vec!["echo", "aaaa", "bb"]]);
    assert_eq!(bools(&b, "argv_truncated"), vec![Some(true)]);
    assert_eq!(i64s(&b, "loginuid"), vec![None]);
    assert_eq!(strs(&b, "tty"), vec![None]);
}

#[test]
fn exit_round_trip() {
    let mut rec = Vec::new();
    synth::exit_record(&mut rec, abi::Exit { hdr: task().hdr(0, 7_000_000_000), exit_status: (7 << 8), _pad0: 0 });
    synth::exit_record(&mut rec, abi::Exit { hdr: task().hdr(0, 8_000_000_000), exit_status: 0x80 | 11, _pad0: 0 });
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    let (a, b) = rec.split_at(core::mem::size_of::<abi::Exit>());
    assert_eq!(d.decode(Probe::Exec, a), Ok(Table::Exit));
    assert_eq!(d.decode(Probe::Exec, b), Ok(Table::Exit));
    let batch = d.builders.finish(Table::Exit, 0).unwrap();
    assert_eq!(i32s(&batch, "exit_code"), vec![Some(7), Some(0)]);
    assert_eq!(i32s(&batch, "signal"), vec![Some(0), Some(11)]);
    assert_eq!(bools(&batch, "core_dumped"), vec![Some(false), Some(true)]);
    assert_eq!(i64s(&batch, "lifetime_ns"), vec![Some(2_000_000_000), Some(3_000_000_000)]);
}

#[test]
fn file_round_trip_every_op() {
    let mk = |op, ret: i64| abi::File {
        hdr: task().hdr(0, 10_000),
        op,
        fd: 5,
        ret,
        flags: 0o101,
        mode: 0o644,
        bytes_read: 100,
        bytes_written: 12345,
        reads: 2,
        writes: 3,
        ino: 99,
        dev: 0x803,
        ..Default::default()
    };
    let mut recs: Vec<Vec<u8>> = Vec::new();
    let mut push = |f, p: &[u8], p2: &[u8], cwd: &[u8]| {
        let mut r = Vec::new();
        synth::file_record(&mut r, f, p, p2, cwd);
        recs.push(r);
    };
    push(mk(abi::FILE_OPEN, 5), b"data/out.bin", b"", b"/home/a");
    push(
        abi::File { how: abi::CLOSE_EXIT, fflags: abi::FILE_MMAP_WRITE, ..mk(abi::FILE_CLOSE, 0) },
        b"/home/a/data/out.bin",
        b"",
        b"",
    );
    push(mk(abi::FILE_RENAME, 0), b"/tmp/x", b"/tmp/y", b"");
    push(mk(abi::FILE_UNLINK, -2), b"gone", b"", b"/");
    push(mk(abi::FILE_READ, 100), b"rel", b"", b"");
    push(mk(abi::FILE_WRITE, 7), b"/w", b"", b"");
    push(abi::File { length: 4096, ..mk(abi::FILE_TRUNCATE, 0) }, b"/t", b"", b"");
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for r in &recs {
        assert_eq!(d.decode(Probe::File, r), Ok(Table::File));
    }
    let b = d.builders.finish(Table::File, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        strs(&b, "op"),
        vec![s("open"), s("close"), s("rename"), s("unlink"), s("read"), s("write"), s("truncate")]
    );
    assert_eq!(
        strs(&b, "path"),
        vec![s("data/out.bin"), s("/home/a/data/out.bin"), s("/tmp/x"), s("gone"), s("rel"), s("/w"), s("/t")]
    );
    assert_eq!(
        strs(&b, "abs_path"),
        vec![s("/home/a/data/out.bin"), s("/home/a/data/out.bin"), s("/tmp/x"), s("/gone"), None, s("/w"), s("/t")]
    );
    assert_eq!(strs(&b, "path2"), vec![None, None, s("/tmp/y"), None, None, None, None]);
    assert_eq!(i64s(&b, "ret"), vec![Some(5), Some(0), Some(0), Some(-2), Some(100), Some(7), Some(0)]);
    assert_eq!(strs(&b, "closed_by"), vec![None, s("exit"), None, None, None, None, None]);
    assert_eq!(bools(&b, "mmap_write")[1], Some(true));
    assert_eq!(i64s(&b, "length"), vec![None, None, None, None, None, None, Some(4096)]);
    assert_eq!(i64s(&b, "file_id"), vec![None; 7], "no file key, no file_id");
    assert_eq!(i64s(&b, "bytes_written")[1], Some(12345));
    assert_eq!(i64s(&b, "writes")[1], Some(3));
    assert_eq!(i64s(&b, "flags")[0], Some(0o101));
    assert_eq!(i32s(&b, "mode")[0], Some(0o644));
    assert_eq!(i64s(&b, "ino")[0], Some(99));
    assert_eq!(i64s(&b, "dev")[0], Some(0x803));
    assert_eq!(d.counts(Probe::File).events, 7);
}

#[test]
fn a_close_without_a_path_is_named_by_its_open() {
    // The live probe records close at sys_exit, when the file can no longer be named.
    // The open file's key joins them, whichever process and descriptor the close came
    // through (here: a dup in another process).
    let mk = |op, pid: u32, fd: i32, ret: i64, file_key: u64| {
        let mut hdr = task().hdr(0, 10_000);
        hdr.pid = pid;
        let how = if op == abi::FILE_CLOSE { abi::CLOSE_CLOSE } else { 0 };
        abi::File { hdr, op, fd, ret, file_key, how, ..Default::default() }
    };
    let mut recs: Vec<Vec<u8>> = Vec::new();
    let mut push = |f, p: &[u8], cwd: &[u8]| {
        let mut r = Vec::new();
        synth::file_record(&mut r, f, p, b"", cwd);
        recs.push(r);
    };
    push(mk(abi::FILE_OPEN, 7, 3, 3, 0xa0), b"notes.txt", b"/home/a");
    push(mk(abi::FILE_OPEN, 8, 3, 3, 0xb0), b"/etc/hosts", b"");
    push(mk(abi::FILE_OPEN, 7, 4, -2, 0), b"/missing", b""); // failed: no file to name
    push(mk(abi::FILE_CLOSE, 9, 5, 0, 0xb0), b"", b"");
    push(mk(abi::FILE_CLOSE, 7, 3, 0, 0xa0), b"", b"");
    push(mk(abi::FILE_CLOSE, 7, 3, 0, 0xa0), b"", b""); // its open is gone
    push(mk(abi::FILE_CLOSE, 7, 4, 0, 0xc0), b"", b""); // never seen opened
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for r in &recs {
        assert_eq!(d.decode(Probe::File, r), Ok(Table::File));
    }
    let b = d.builders.finish(Table::File, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(strs(&b, "path")[3..], [s("/etc/hosts"), s("/home/a/notes.txt"), s(""), s("")]);
    assert_eq!(strs(&b, "abs_path")[3..], [s("/etc/hosts"), s("/home/a/notes.txt"), None, None]);
    let ids = i64s(&b, "file_id");
    assert_eq!(ids[1], ids[3], "open and close share the file_id");
    assert_eq!(ids[2], None);
}

/// A file record of process `pid` at `ktime`: open with a path, or close (`fflags` marks).
fn file_rec(op: u32, pid: u32, fd: i32, file_key: u64, ktime: u64, f: abi::File, path: &[u8]) -> Vec<u8> {
    let mut hdr = task().hdr(0, ktime);
    hdr.pid = pid;
    hdr.tid = pid;
    let how = if op == abi::FILE_CLOSE { abi::CLOSE_CLOSE } else { 0 };
    let mut r = Vec::new();
    synth::file_record(&mut r, abi::File { hdr, op, fd, ret: 0, file_key, how, ..f }, path, b"", b"");
    r
}

#[test]
fn a_close_written_at_its_structs_reuse_is_named_by_its_closer() {
    // Process 7 closes /a (descriptor 3, struct 0xa0) and is preempted before its hook
    // runs; process 8 opens /b, gets the same struct, and its probe writes /a's close
    // (its sums, marked REUSED, process 8, no descriptor); then 7's hook writes its own
    // record (LATE: process 7, descriptor 3, the open's generation, no sums).
    let sums = abi::File { bytes_written: 10, writes: 1, gen: 41, ..Default::default() };
    let recs = [
        file_rec(abi::FILE_OPEN, 7, 3, 0xa0, 1_000, Default::default(), b"/a"),
        file_rec(abi::FILE_CLOSE, 8, -1, 0xa0, 2_000, abi::File { fflags: abi::FILE_REUSED, ..sums }, b""),
        file_rec(abi::FILE_OPEN, 8, 4, 0xa0, 3_000, Default::default(), b"/b"),
        file_rec(
            abi::FILE_CLOSE,
            7,
            3,
            0xa0,
            4_000,
            abi::File { fflags: abi::FILE_LATE, gen: 41, ..Default::default() },
            b"",
        ),
        file_rec(abi::FILE_CLOSE, 8, 4, 0xa0, 5_000, Default::default(), b""),
    ];
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for r in &recs {
        assert_eq!(d.decode(Probe::File, r), Ok(Table::File));
    }
    let b = d.builders.finish(Table::File, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(strs(&b, "op"), vec![s("open"), s("open"), s("close"), s("close")]);
    assert_eq!(i32s(&b, "pid"), vec![Some(7), Some(8), Some(7), Some(8)], "/a's close is process 7's");
    assert_eq!(i32s(&b, "fd"), vec![Some(3), Some(4), Some(3), Some(4)]);
    assert_eq!(i64s(&b, "ktime_ns")[2], Some(4_000), "when its closer's hook ran");
    assert_eq!(strs(&b, "path"), vec![s("/a"), s("/b"), s("/a"), s("/b")]);
    assert_eq!(i64s(&b, "bytes_written"), vec![Some(0), Some(0), Some(10), Some(0)], "the held record's sums");
    assert_eq!(i64s(&b, "writes")[2], Some(1));
    let ids = i64s(&b, "file_id");
    assert_eq!((ids[2], ids[3]), (ids[0], ids[1]), "each close has its own open's file_id");
    assert_ne!(ids[0], ids[1]);
    assert_eq!(d.reused_closes(), agent_linux::decode::ReusedCloses { reused: 1, named: 1 });
    assert_eq!(d.counts(Probe::File).events, 5, "every record counts, the late one too");
}

#[test]
fn a_reused_close_its_closer_never_names_is_written_as_it_came() {
    // A process sharing the descriptor table closed it (CLONE_FILES): no late record. The
    // row waits HELD_WAIT_NS for one, then is written under the reusing process.
    use agent_linux::decode::HELD_WAIT_NS;
    let reused = abi::File { fflags: abi::FILE_REUSED, bytes_read: 5, reads: 1, gen: 9, ..Default::default() };
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for r in [
        file_rec(abi::FILE_OPEN, 7, 3, 0xa0, 1_000, Default::default(), b"/a"),
        file_rec(abi::FILE_CLOSE, 8, -1, 0xa0, 2_000, reused, b""),
        file_rec(abi::FILE_OPEN, 8, 4, 0xa0, 3_000, Default::default(), b"/b"),
    ] {
        assert_eq!(d.decode(Probe::File, &r), Ok(Table::File));
    }
    d.release_held(2_000 + HELD_WAIT_NS - 1);
    assert_eq!(d.builders.len(Table::File), 2, "still waiting for its closer");
    d.release_held(2_000 + HELD_WAIT_NS);
    assert_eq!(d.builders.len(Table::File), 3, "written once the wait is up");
    // A late record that comes after (or with no held close at all) adds nothing.
    let late = abi::File { fflags: abi::FILE_LATE, gen: 9, ..Default::default() };
    d.decode(Probe::File, &file_rec(abi::FILE_CLOSE, 7, 3, 0xa0, 3_000 + HELD_WAIT_NS, late, b"")).unwrap();
    let b = d.builders.finish(Table::File, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(strs(&b, "op"), vec![s("open"), s("open"), s("close")]);
    assert_eq!(i32s(&b, "pid")[2], Some(8), "under the reusing process");
    assert_eq!(i32s(&b, "fd")[2], Some(-1));
    assert_eq!(strs(&b, "path")[2], s("/a"), "named by its own open, not the one that reused it");
    assert_eq!(i64s(&b, "bytes_read")[2], Some(5));
    assert_eq!(i64s(&b, "file_id")[2], i64s(&b, "file_id")[0]);
    assert_eq!(d.reused_closes(), agent_linux::decode::ReusedCloses { reused: 1, named: 0 });

    // A marked record with a path of its own (the kernel writes none) is still one close
    // row, named by its open.
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    d.decode(Probe::File, &file_rec(abi::FILE_OPEN, 7, 3, 0xa0, 1_000, Default::default(), b"/a")).unwrap();
    d.decode(Probe::File, &file_rec(abi::FILE_CLOSE, 8, -1, 0xa0, 2_000, reused, b"/elsewhere")).unwrap();
    d.release_all();
    let b = d.builders.finish(Table::File, 0).unwrap();
    assert_eq!(strs(&b, "path"), vec![s("/a"), s("/a")]);
    assert_eq!(d.counts(Probe::File).malformed, 0);

    // More held at once than the decoder keeps: the oldest is written as it came, and the
    // end of the capture writes the rest.
    let mut d = Decoder::new(64, SEED, EnvpMode::Redacted);
    for k in 0..20u64 {
        let r = file_rec(abi::FILE_CLOSE, 8, -1, 0x100 + k, 1_000 + k, abi::File { gen: k as u32, ..reused }, b"");
        d.decode(Probe::File, &r).unwrap();
    }
    assert_eq!(d.builders.len(Table::File), 4, "16 held, the 4 oldest written");
    let late = abi::File { fflags: abi::FILE_LATE, gen: 0, ..Default::default() };
    d.decode(Probe::File, &file_rec(abi::FILE_CLOSE, 7, 3, 0x100, 5_000, late, b"")).unwrap();
    assert_eq!(d.builders.len(Table::File), 4, "the oldest was written already: its late record adds nothing");
    let late = abi::File { fflags: abi::FILE_LATE, gen: 19, ..Default::default() };
    d.decode(Probe::File, &file_rec(abi::FILE_CLOSE, 7, 3, 0x100 + 19, 5_000, late, b"")).unwrap();
    assert_eq!(d.builders.len(Table::File), 5, "a held one is named and written at once");
    d.release_all();
    let b = d.builders.finish(Table::File, 0).unwrap();
    let pids = i32s(&b, "pid");
    assert_eq!(pids.len(), 20, "every close once");
    assert_eq!(pids.iter().filter(|p| **p == Some(7)).count(), 1);
    let times: std::collections::BTreeSet<i64> = i64s(&b, "ktime_ns").into_iter().flatten().collect();
    assert_eq!(times.len(), 20, "no close written twice");
}

#[test]
fn net_round_trip_v4_and_v6() {
    let mut n = abi::Net { hdr: task().hdr(0, 50_000), ..Default::default() };
    n.ep.family = libc::AF_INET as u16;
    n.ep.proto = libc::IPPROTO_TCP as u8;
    n.ep.direction = abi::DIR_OUT;
    n.ep.saddr[..4].copy_from_slice(&[128, 232, 110, 120]);
    n.ep.daddr[..4].copy_from_slice(&[66, 35, 250, 204]);
    n.ep.sport = 34855;
    n.ep.dport = 80;
    n.ep.netns = 4026531840;
    n.outcome = abi::NET_CLOSED;
    n.owner = abi::OWNER_CONNECT;
    n.bytes_sent = 1234;
    n.bytes_recv = 56789;
    n.segs_sent = 3;
    n.retrans = 2;
    n.srtt_us = 180;
    n.start_ns = 20_000;
    let mut v6 = n;
    v6.ep.family = libc::AF_INET6 as u16;
    v6.ep.proto = libc::IPPROTO_UDP as u8;
    v6.ep.direction = abi::DIR_IN;
    v6.ep.saddr = "fe80::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    v6.ep.daddr = "2001:db8::53".parse::<std::net::Ipv6Addr>().unwrap().octets();
    v6.ep.dport = 443;
    v6.flags = abi::NET_UPDATE | abi::NET_PREEXISTING;
    v6.outcome = abi::NET_OPEN;
    v6.owner = abi::OWNER_SEND;
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for x in [n, v6] {
        let mut r = Vec::new();
        synth::net_record(&mut r, x);
        assert_eq!(d.decode(Probe::Net, &r), Ok(Table::Net));
    }
    let b = d.builders.finish(Table::Net, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(strs(&b, "family"), vec![s("ipv4"), s("ipv6")]);
    assert_eq!(strs(&b, "proto"), vec![s("tcp"), s("udp")]);
    assert_eq!(strs(&b, "direction"), vec![s("out"), s("in")]);
    assert_eq!(strs(&b, "saddr"), vec![s("128.232.110.120"), s("fe80::1")]);
    assert_eq!(strs(&b, "daddr"), vec![s("66.35.250.204"), s("2001:db8::53")]);
    assert_eq!(i32s(&b, "dport"), vec![Some(80), Some(443)]);
    assert_eq!(i64s(&b, "netns"), vec![Some(4026531840), Some(4026531840)]);
    // The community-id-spec README's example flow.
    assert_eq!(strs(&b, "community_id")[0], s("1:LQU9qZlK+B5F3KDmev6m5PMibrg="));
    assert_eq!(strs(&b, "outcome"), vec![s("closed"), s("open")]);
    assert_eq!(strs(&b, "owner"), vec![s("connect"), s("send")]);
    assert_eq!(bools(&b, "interim"), vec![Some(false), Some(true)]);
    assert_eq!(bools(&b, "preexisting"), vec![Some(false), Some(true)]);
    assert_eq!(i64s(&b, "bytes_recv"), vec![Some(56789), Some(56789)]);
    assert_eq!(i64s(&b, "segs_sent"), vec![Some(3), Some(3)]);
    assert_eq!(i64s(&b, "retransmits"), vec![Some(2), None]);
    assert_eq!(i64s(&b, "srtt_us"), vec![Some(180), None]);
    assert_eq!(i64s(&b, "duration_ns"), vec![Some(30_000), Some(30_000)]);
}

#[test]
fn dns_round_trip_query_and_response() {
    let q = synth::dns_message(0xbeef, false, 0, "www.example.com", 1, &[]);
    let r = synth::dns_message(
        0xbeef,
        true,
        0,
        "www.example.com",
        1,
        &[
            Answer::Cname("edge.example.net".into()),
            Answer::A([93, 184, 216, 34]),
            Answer::Aaaa([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ],
    );
    let nx = synth::dns_message(7, true, 3, "nope.internal", 28, &[]);
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for (msg, dir, lat, wire_extra) in
        [(&q, abi::DIR_OUT, 0, 0), (&r, abi::DIR_IN, 1_500_000, 0), (&nx, abi::DIR_IN, 0, 10)]
    {
        let mut x = abi::Dns { hdr: task().hdr(0, 1), ..Default::default() };
        x.ep.family = libc::AF_INET as u16;
        x.ep.proto = libc::IPPROTO_UDP as u8;
        x.ep.direction = dir;
        x.ep.dport = 53;
        x.latency_ns = lat;
        x.wire_len = msg.len() as u32 + wire_extra;
        let mut rec = Vec::new();
        synth::dns_record(&mut rec, x, msg);
        assert_eq!(d.decode(Probe::Dns, &rec), Ok(Table::Dns));
    }
    let b = d.builders.finish(Table::Dns, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(i32s(&b, "txid"), vec![Some(0xbeef), Some(0xbeef), Some(7)]);
    assert_eq!(bools(&b, "is_response"), vec![Some(false), Some(true), Some(true)]);
    assert_eq!(strs(&b, "qname"), vec![s("www.example.com"), s("www.example.com"), s("nope.internal")]);
    assert_eq!(strs(&b, "qtype"), vec![s("A"), s("A"), s("AAAA")]);
    assert_eq!(strs(&b, "rcode"), vec![None, s("NOERROR"), s("NXDOMAIN")]);
    assert_eq!(lists(&b, "answers"), vec![vec![], vec!["edge.example.net", "93.184.216.34", "2001:db8::1"], vec![]]);
    assert_eq!(lists(&b, "answer_types"), vec![vec![], vec!["CNAME", "A", "AAAA"], vec![]]);
    assert_eq!(lists(&b, "answer_names")[1][0], "www.example.com");
    let ttls = b.column_by_name("answer_ttls").unwrap().as_any().downcast_ref::<arrow_array::ListArray>().unwrap();
    let row1 = ttls.value(1);
    let row1 = row1.as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
    assert_eq!(row1.values().to_vec(), vec![300, 300, 300]);
    assert_eq!(strs(&b, "qclass"), vec![s("IN"), s("IN"), s("IN")]);
    assert_eq!(i64s(&b, "latency_ns"), vec![None, Some(1_500_000), None]);
    assert_eq!(bools(&b, "msg_truncated"), vec![Some(false), Some(false), Some(true)]);
}

#[test]
fn module_rows_per_call() {
    let mut rec = Vec::new();
    // A finit_module that loaded (tainted E: unsigned), an init_module refused before the
    // kernel read the name, and a delete_module that unloaded.
    let load = abi::Module {
        hdr: task().hdr(0, 1),
        syscall: abi::MODULE_FINIT,
        flags: 2,
        status: abi::MODULE_LOADED,
        taints: 1 << 13,
        ..Default::default()
    };
    synth::module_record(&mut rec, load, b"nf_tables", b"/lib/modules/nf_tables.ko", b"debug=1");
    let refused = abi::Module {
        hdr: task().hdr(0, 2),
        syscall: abi::MODULE_INIT,
        ret: -8,
        image_len: 7,
        status: abi::MODULE_PARAMS_TRUNCATED,
        ..Default::default()
    };
    synth::module_record(&mut rec, refused, b"", b"", b"");
    let unload = abi::Module {
        hdr: task().hdr(0, 3),
        syscall: abi::MODULE_DELETE,
        flags: libc::O_NONBLOCK as u32,
        status: abi::MODULE_FREED,
        taints: (1 << 12) | (1 << 13),
        ..Default::default()
    };
    synth::module_record(&mut rec, unload, b"nf_tables", b"", b"");
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    let mut off = 0;
    while off < rec.len() {
        let len = abi::Hdr::read(&rec[off..]).unwrap().len as usize;
        assert_eq!(d.decode(Probe::Module, &rec[off..off + len]).unwrap(), Table::Module);
        off += len;
    }
    let b = d.builders.finish(Table::Module, 0).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(strs(&b, "op"), vec![s("load"), s("load"), s("unload")]);
    assert_eq!(strs(&b, "syscall"), vec![s("finit_module"), s("init_module"), s("delete_module")]);
    assert_eq!(strs(&b, "name"), vec![s("nf_tables"), None, s("nf_tables")]);
    assert_eq!(strs(&b, "path"), vec![s("/lib/modules/nf_tables.ko"), None, None]);
    assert_eq!(strs(&b, "params"), vec![s("debug=1"), s(""), None]);
    assert_eq!(bools(&b, "params_truncated"), vec![Some(false), Some(true), Some(false)]);
    assert_eq!(i64s(&b, "flags"), vec![Some(2), Some(0), Some(2048)]);
    assert_eq!(i64s(&b, "ret"), vec![Some(0), Some(-8), Some(0)]);
    assert_eq!(strs(&b, "error"), vec![None, s("ENOEXEC"), None]);
    assert_eq!(bools(&b, "loaded"), vec![Some(true), Some(false), Some(false)]);
    assert_eq!(bools(&b, "freed"), vec![Some(false), Some(false), Some(true)]);
    assert_eq!(strs(&b, "taint"), vec![s("E"), None, s("OE")]);
    assert_eq!(i64s(&b, "image_bytes"), vec![None, Some(7), None]);
}

#[test]
fn module_call_out_of_range_is_malformed() {
    let m = abi::Module { hdr: task().hdr(0, 1), syscall: 9, ..Default::default() };
    let mut rec = Vec::new();
    synth::module_record(&mut rec, m, b"x", b"", b"");
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    assert!(d.decode(Probe::Module, &rec).is_err());
}

/// Each row's `comm` and `exec_id` are its own header's, however the rows before it came:
/// the decoder keeps the process of the row before (`LastProc`) and must not hand it to a
/// row of a renamed thread, another process with the same name, a pid reused, or after a
/// name that was not UTF-8.
#[test]
fn comm_and_exec_id_follow_each_row_not_the_row_before() {
    // (pid, start_ns, comm bytes); exec_id counts start times in clock ticks.
    const T1: u64 = 5_000_000_000;
    const T2: u64 = 6_000_000_000;
    let rows: [(u32, u64, &[u8]); 12] = [
        (0, 0, b""), // as the decoder's kept process starts: no process kept yet
        (7, T1, b"make"),
        (7, T1, b"make"),
        (7, T1, b"make-worker"), // a thread renamed (pthread_setname_np)
        (8, T1, b"make-worker"), // another process, the same name
        (8, T2, b"make-worker"), // its pid reused by a later process
        (8, T2, b"bad-\xff"),    // not UTF-8
        (8, T2, b"bad-\xff"),
        (8, T2, b"make-worker"),
        (8, T2, b"make-worker\0x"),  // bytes after the NUL are not the name
        (8, T2, b"0123456789abcde"), // 15 bytes: the longest comm, its NUL the 16th
        (7, T1, b"make"),
    ];
    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for (i, &(pid, start_ns, comm)) in rows.iter().enumerate() {
        let mut hdr = task().hdr(0, 10 + i as u64);
        (hdr.pid, hdr.start_ns, hdr.comm) = (pid, start_ns, [0; 16]);
        hdr.comm[..comm.len()].copy_from_slice(comm);
        let mut r = Vec::new();
        synth::file_record(&mut r, abi::File { hdr, op: abi::FILE_UNLINK, ..Default::default() }, b"/x", b"", b"");
        assert_eq!(d.decode(Probe::File, &r), Ok(Table::File));
    }
    assert_eq!(d.counts(Probe::File).invalid_utf8, 2);
    let b = d.builders.finish(Table::File, 0).unwrap();
    let want: Vec<_> = rows
        .iter()
        .map(|&(_, _, c)| {
            let c = &c[..c.iter().position(|&x| x == 0).unwrap_or(c.len())];
            Some(String::from_utf8_lossy(c).into_owned())
        })
        .collect();
    assert_eq!(strs(&b, "comm"), want);
    let ids: Vec<_> = rows.iter().map(|&(pid, start, _)| Some(abi::exec_id(SEED, pid, start))).collect();
    assert_eq!(i64s(&b, "exec_id"), ids);
    assert_ne!(ids[3], ids[4]);
    assert_ne!(ids[4], ids[5]);
}

#[test]
fn invalid_utf8_is_kept_exactly_and_counted() {
    let f = abi::File { hdr: task().hdr(0, 1), op: abi::FILE_RENAME, ..Default::default() };
    let mut rec = Vec::new();
    synth::file_record(&mut rec, f, b"bad-\xff\xfe", b"ok-\xf0\x9f\x98\x80", b"/d\xc3");
    let (mut d, _) = decode_one(Probe::File, &rec, EnvpMode::Redacted);
    assert_eq!(d.counts(Probe::File).invalid_utf8, 1);
    let b = d.builders.finish(Table::File, 0).unwrap();
    assert_eq!(strs(&b, "path"), vec![Some("bad-\u{FFFD}\u{FFFD}".into())]);
    assert_eq!(strs(&b, "abs_path"), vec![Some("/d\u{FFFD}/bad-\u{FFFD}\u{FFFD}".into())]);
    assert_eq!(strs(&b, "path2"), vec![Some("ok-\u{1F600}".into())], "valid UTF-8 stays as it is");
    let raw = |name: &str| {
        let a = b.column_by_name(name).unwrap().as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
        (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_vec())).collect::<Vec<_>>()
    };
    assert_eq!(raw("path_raw"), vec![Some(b"bad-\xff\xfe".to_vec())]);
    assert_eq!(raw("abs_path_raw"), vec![Some(b"/d\xc3/bad-\xff\xfe".to_vec())]);
    assert_eq!(raw("path2_raw"), vec![None], "null when the string is exact");

    // argv and envp: every string's bytes when any is not UTF-8; secrets redacted alike.
    let e = abi::Exec { hdr: task().hdr(0, 1), ..Default::default() };
    let mut rec = Vec::new();
    synth::exec_record(&mut rec, e, b"/bin/x", b"x\0\xff\0", b"API_TOKEN=s3cr3t\0A=\xfe\0", b"/bin/x");
    let (mut d, _) = decode_one(Probe::Exec, &rec, EnvpMode::Redacted);
    let b = d.builders.finish(Table::Exec, 0).unwrap();
    let lists = |name: &str| {
        let l = b.column_by_name(name).unwrap().as_any().downcast_ref::<arrow_array::ListArray>().unwrap();
        let v = l.value(0);
        let v = v.as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
        (0..v.len()).map(|i| v.value(i).to_vec()).collect::<Vec<_>>()
    };
    assert_eq!(lists("argv_raw"), vec![b"x".to_vec(), b"\xff".to_vec()]);
    assert_eq!(lists("envp_raw"), vec![b"API_TOKEN=<redacted>".to_vec(), b"A=\xfe".to_vec()]);
    assert_eq!(strs(&b, "path"), vec![Some("/bin/x".into())]);
    assert!(b.column_by_name("path_raw").unwrap().is_null(0));
}

#[test]
fn malformed_records_are_counted_and_leave_builders_untouched() {
    let mut good = Vec::new();
    synth::Synth::new(1).file(&mut good);
    let set_u32 = |r: &mut Vec<u8>, at: usize, v: u32| r[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    let mut cases: Vec<(Vec<u8>, DecodeError)> = Vec::new();
    cases.push((good[..10].to_vec(), DecodeError::Short { len: 10 }));
    let mut bad_abi = good.clone();
    bad_abi[2] = 9;
    cases.push((bad_abi, DecodeError::BadAbi { abi: 9 }));
    let mut unknown = good.clone();
    unknown[0] = 77;
    cases.push((unknown, DecodeError::UnknownKind { kind: 77 }));
    let mut overrun = good.clone();
    set_u32(&mut overrun, 4, good.len() as u32 + 1);
    cases.push((overrun, DecodeError::LenOverrun { declared: good.len() + 1, actual: good.len() }));
    let mut short_kind = good.clone();
    set_u32(&mut short_kind, 4, 100);
    let need = std::mem::size_of::<abi::File>();
    cases.push((short_kind, DecodeError::TooShortForKind { kind: abi::KIND_FILE, len: 100, need }));
    let mut tail = good.clone();
    set_u32(&mut tail, 140, 1 << 30); // path_len
    let have = good.len() - need;
    cases.push((tail, DecodeError::TailOverrun { kind: abi::KIND_FILE, need: 0, have })); // need: compared below
    let mut bad_op = good.clone();
    set_u32(&mut bad_op, 80, 99);
    cases.push((bad_op, DecodeError::BadField { kind: abi::KIND_FILE, field: "op", value: 99 }));

    let mut d = Decoder::new(16, SEED, EnvpMode::Redacted);
    for (rec, want) in &cases {
        let got = d.decode(Probe::File, rec).unwrap_err();
        match (got, want) {
            (DecodeError::TailOverrun { kind, have: h, .. }, DecodeError::TailOverrun { have, .. }) => {
                assert_eq!((kind, h), (abi::KIND_FILE, *have));
            }
            _ => assert_eq!(&got, want),
        }
    }
    assert_eq!(d.counts(Probe::File).malformed, cases.len() as u64);
    assert_eq!(d.builders.len(Table::File), 0, "no partial rows");
    // Slack after hdr.len (ring-buffer padding) is ignored.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 7]);
    assert_eq!(d.decode(Probe::File, &padded), Ok(Table::File));
    assert_eq!(d.decode(Probe::File, &good), Ok(Table::File));
    assert_eq!(d.builders.len(Table::File), 2);
}

#[test]
fn every_synthetic_kind_decodes_and_builds_a_valid_batch() {
    let mut s = synth::Synth::new(42);
    let mut d = Decoder::new(1024, SEED, EnvpMode::Redacted);
    let kinds = [
        (abi::Kind::Exec, Probe::Exec, Table::Exec),
        (abi::Kind::Exit, Probe::Exec, Table::Exit),
        (abi::Kind::File, Probe::File, Table::File),
        (abi::Kind::Net, Probe::Net, Table::Net),
        (abi::Kind::Dns, Probe::Dns, Table::Dns),
        (abi::Kind::Module, Probe::Module, Table::Module),
    ];
    for (kind, probe, table) in kinds {
        for _ in 0..500 {
            let mut rec = Vec::new();
            s.record(kind, &mut rec);
            assert_eq!(d.decode(probe, &rec), Ok(table));
            assert_eq!(abi::Hdr::read(&rec).unwrap().len as usize, rec.len());
        }
        let b = d.builders.finish(table, 0).unwrap();
        assert_eq!(b.num_rows(), 500);
        assert_eq!(b.schema(), table.schema());
    }
    for p in Probe::ALL {
        assert_eq!(d.counts(p).malformed, 0);
    }
}

#[test]
fn a_malformed_dns_message_is_kept_raw_and_flagged() {
    // A response whose question name is a compression pointer to itself, then a record
    // count past the end: nothing past the header decodes.
    let msg = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    let mut x = abi::Dns { hdr: task().hdr(0, 1), ..Default::default() };
    x.ep.family = libc::AF_INET as u16;
    x.ep.proto = libc::IPPROTO_UDP as u8;
    x.ep.direction = abi::DIR_OUT;
    let mut rec = Vec::new();
    synth::dns_record(&mut rec, x, &msg);
    let (mut d, t) = decode_one(Probe::Dns, &rec, EnvpMode::Redacted);
    assert_eq!(t, Table::Dns);
    assert_eq!(d.counts(Probe::Dns).malformed, 0, "kept, not skipped");
    let b = d.builders.finish(Table::Dns, 0).unwrap();
    assert_eq!(i32s(&b, "txid"), vec![Some(0x1234)]);
    assert_eq!(bools(&b, "is_response"), vec![Some(true)]);
    assert_eq!(strs(&b, "qname"), vec![None]);
    assert_eq!(bools(&b, "msg_truncated"), vec![Some(true)]);
    let raw = b.column_by_name("raw").unwrap().as_any().downcast_ref::<arrow_array::BinaryArray>().unwrap();
    assert_eq!(raw.value(0), &msg[..]);
    assert_eq!(lists(&b, "answers"), vec![Vec::<String>::new()]);
}
