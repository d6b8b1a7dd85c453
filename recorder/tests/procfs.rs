//! Processes found running at start become `exec` rows with the keys the probe would give.

use std::process::Command;

use agent_linux::abi::Pod;
use agent_linux::decode::{Decoder, EnvpMode, REDACTED};
use agent_linux::procfs;
use agent_linux::{abi, Probe, Table};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};

#[test]
fn a_running_child_is_read_with_argv_env_and_ancestry() {
    let mut child =
        Command::new("/bin/sleep").arg("30").env_clear().env("LANG", "C").env("API_TOKEN", "s3cret").spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let me = std::process::id();
    let now = agent_linux::host::boottime_ns() as u64;
    let mine = procfs::process_record(me, 1 << 17, now).expect("own process readable");
    let theirs = procfs::process_record(child.id(), 1 << 17, now).expect("child readable");
    let _ = child.kill();
    let _ = child.wait();

    let mut d = Decoder::new(8, 1234, EnvpMode::Redacted);
    assert_eq!(d.decode(Probe::Exec, &mine), Ok(Table::Exec));
    assert_eq!(d.decode(Probe::Exec, &theirs), Ok(Table::Exec));
    let b = d.builders.finish(Table::Exec, 0).unwrap();
    let pid = b.column_by_name("pid").unwrap().as_primitive::<Int32Type>();
    let ppid = b.column_by_name("ppid").unwrap().as_primitive::<Int32Type>();
    assert_eq!((pid.value(0) as u32, pid.value(1) as u32), (me, child.id()));
    assert_eq!(ppid.value(1) as u32, me);
    let exec_id = b.column_by_name("exec_id").unwrap().as_primitive::<Int64Type>();
    let parent = b.column_by_name("parent_exec_id").unwrap().as_primitive::<Int64Type>();
    assert_eq!(parent.value(1), exec_id.value(0), "the child's parent key is our key");
    let path = b.column_by_name("path").unwrap().as_string::<i32>();
    assert!(path.value(1).ends_with("/sleep"), "{}", path.value(1));
    let argv = b.column_by_name("argv").unwrap().as_list::<i32>();
    let a: Vec<String> = argv.value(1).as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect();
    assert_eq!(a, ["/bin/sleep", "30"]);
    let envp = b.column_by_name("envp").unwrap().as_list::<i32>();
    let e: Vec<String> = envp.value(1).as_string::<i32>().iter().map(|s| s.unwrap().to_string()).collect();
    // Rust passes the environment sorted by name.
    assert_eq!(e, [format!("API_TOKEN={REDACTED}"), "LANG=C".to_string()]);
    let from = b.column_by_name("from_procfs").unwrap().as_boolean();
    assert!(from.value(0) && from.value(1));
    let argc = b.column_by_name("argc").unwrap().as_primitive::<Int32Type>();
    assert_eq!(argc.value(1), 2);
    // Start times are whole ticks, as the probe's are after exec_id quantizes them.
    let start = b.column_by_name("start_ktime_ns").unwrap().as_primitive::<Int64Type>();
    assert_eq!(start.value(1) as u64 % (1_000_000_000 / abi::USER_HZ), 0);
    assert!(b.column_by_name("cgroup_id").unwrap().as_primitive::<Int64Type>().value(1) > 0);
}

#[test]
fn scan_finds_init_and_skips_kernel_threads_and_the_recorder() {
    let mut out = Vec::new();
    let n = procfs::scan(&mut out, 4096, 1, std::process::id());
    assert_eq!(n, out.len());
    let pids: Vec<u32> = out.iter().map(|r| abi::Hdr::read(r).unwrap().pid).collect();
    assert!(pids.contains(&1), "init is a user process");
    assert!(!pids.contains(&2), "kthreadd is a kernel thread");
    assert!(!pids.contains(&std::process::id()));
}
