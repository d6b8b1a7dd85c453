//! The real `capq` binary over segments written by the real segment writer: exact answers,
//! time filters, output formats, and its error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use agent_linux::abi;
use agent_linux::decode::{Decoder, EnvpMode};
use agent_linux::host::HostInfo;
use agent_linux::retention::Retention;
use agent_linux::segment::{SegmentWriter, WriterConfig};
use agent_linux::stats::Health;
use agent_linux::synth::{self, Synth, Task};
use agent_linux::writer::list_segments;
use agent_linux::{Probe, Table};
use datafusion::arrow::array::{BooleanArray, RecordBatch};

const SEED: u64 = 99;
/// 2026-01-15T10:00:00Z in ns.
const H10: i64 = 1_768_471_200_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

fn task(pid: u32, ppid: u32, comm: &str, start: u64, parent_start: u64) -> Task {
    Task {
        pid,
        tid: pid,
        ppid,
        uid: 1000,
        gid: 1000,
        comm: comm.into(),
        start_ns: start,
        parent_start_ns: parent_start,
        cgroup_id: 1,
    }
}

fn exec(out: &mut Vec<u8>, t: &Task, ktime: u64, path: &str, argv: &[&str]) {
    let mut e = abi::Exec {
        hdr: t.hdr(abi::KIND_EXEC, ktime),
        argc: argv.len() as u32,
        envc: 1,
        loginuid: u32::MAX,
        ..Default::default()
    };
    e.euid = t.uid;
    synth::exec_record(
        out,
        e,
        path.as_bytes(),
        &synth::nul_join(argv),
        &synth::nul_join(&["SECRET_TOKEN=abc"]),
        path.as_bytes(),
    );
}

/// Writes the records through a decoder and a segment writer with a fixed clock offset.
fn write(dir: &Path, records: &[(Probe, Vec<u8>)], offset_ns: i64, table: Table) {
    let mut d = Decoder::new(1 << 16, SEED, EnvpMode::Redacted);
    for (p, r) in records {
        d.decode(*p, r).unwrap();
    }
    let cfg = Arc::new(WriterConfig::new(dir, HostInfo::fixed("h", "b")));
    let mut w = SegmentWriter::new(table, cfg, Health::new(), Arc::new(Retention::unlimited()));
    if let Some(b) = d.builders.finish(table, offset_ns) {
        w.write(b).unwrap();
    }
    w.publish().unwrap();
}

/// A capture with known content: a shell pipeline at 10:00, cron at 11:00, 1000 file ops.
fn capture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    // ktime 1e12 ns after boot is 10:00:00 + 1 s with this offset.
    let offset = H10 - 1_000_000_000_000 + 1_000_000_000;
    let bash = task(100, 1, "bash", 500_000_000_000, 1_000_000_000);
    let ls = task(101, 100, "ls", 999_000_000_000, bash.start_ns);
    let wc = task(102, 100, "wc", 999_100_000_000, bash.start_ns);
    let mut recs = Vec::new();
    let mut push = |p: Probe, f: &dyn Fn(&mut Vec<u8>)| {
        let mut r = Vec::new();
        f(&mut r);
        recs.push((p, r));
    };
    push(Probe::Exec, &|r| exec(r, &bash, 1_000_000_000_000, "/bin/bash", &["bash", "-c", "ls -la /tmp | wc -l"]));
    push(Probe::Exec, &|r| exec(r, &ls, 1_000_001_000_000, "/bin/ls", &["ls", "-la", "/tmp"]));
    push(Probe::Exec, &|r| exec(r, &wc, 1_000_002_000_000, "/usr/bin/wc", &["wc", "-l"]));
    for i in 0..5u64 {
        let cron = task(200 + i as u32, 1, "cron", 1_000_000_000_000 + i, 1);
        let k = 1_000_000_000_000 + HOUR as u64 + i * 1_000_000_000;
        push(Probe::Exec, &|r| exec(r, &cron, k, "/usr/sbin/cron", &["cron", "-f"]));
    }
    write(dir.path(), &recs, offset, Table::Exec);
    let exits: Vec<(Probe, Vec<u8>)> = [(&ls, 0u32), (&wc, 2 << 8)]
        .iter()
        .map(|(t, st)| {
            let mut r = Vec::new();
            synth::exit_record(&mut r, abi::Exit { hdr: t.hdr(0, 1_000_003_000_000), exit_status: *st, _pad0: 0 });
            (Probe::Exec, r)
        })
        .collect();
    write(dir.path(), &exits, offset, Table::Exit);
    write_files(dir.path(), 5, 1000);
    dir
}

/// `n` synthetic file rows from `seed`, at 10:xx like the rest of `capture()`.
fn write_files(dir: &Path, seed: u64, n: usize) {
    let mut s = Synth::new(seed);
    let files: Vec<(Probe, Vec<u8>)> = (0..n)
        .map(|_| {
            let mut r = Vec::new();
            s.file(&mut r);
            (Probe::File, r)
        })
        .collect();
    // Synthetic file ktimes are about 3.7e12.
    write(dir, &files, H10 - 3_700_000_000_000 + 60_000_000_000, Table::File);
}

fn capq(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capq")).arg("--dir").arg(dir).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = capq(dir, args);
    assert!(o.status.success(), "capq {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn csv(dir: &Path, sql: &str) -> String {
    ok(dir, &["--format", "csv", sql])
}

fn err(dir: &Path, args: &[&str], code: i32) -> String {
    let o = capq(dir, args);
    assert_eq!(o.status.code(), Some(code), "stdout: {}", String::from_utf8_lossy(&o.stdout));
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

#[test]
fn counts_group_bys_and_absent_tables() {
    let c = capture();
    let d = c.path();
    assert_eq!(csv(d, "SELECT count(*) AS n FROM exec"), "n\n8\n");
    assert_eq!(
        csv(d, "SELECT comm, count(*) AS n FROM exec GROUP BY comm ORDER BY n DESC, comm"),
        "comm,n\ncron,5\nbash,1\nls,1\nwc,1\n"
    );
    // Strings are read as views (a group-by or a filter on them copies 16 bytes a row, not
    // the string), and so are lists of strings (dictscan::ViewLists).
    assert_eq!(
        csv(d, "SELECT arrow_typeof(comm) AS s, arrow_typeof(argv) AS l FROM exec LIMIT 1"),
        "s,l\nUtf8View,List(non-null Utf8View)\n"
    );
    assert_eq!(csv(d, "SELECT count(*) AS n FROM file"), "n\n1000\n");
    for t in ["dns", "net", "module", "stats"] {
        assert_eq!(csv(d, &format!("SELECT count(*) AS n FROM {t}")), "n\n0\n", "{t}");
    }
    assert_eq!(csv(d, "SELECT exit_code FROM exit ORDER BY exit_code"), "exit_code\n0\n2\n");
}

#[test]
fn argv_lists_envp_redaction_and_ancestry() {
    let c = capture();
    let d = c.path();
    assert_eq!(
        csv(d, "SELECT argv[3] AS a, array_length(argv) AS n FROM exec WHERE array_has(argv, '-la')"),
        "a,n\n/tmp,3\n"
    );
    assert_eq!(csv(d, "SELECT argv FROM exec WHERE comm = 'bash'"), "argv\n\"[bash, -c, ls -la /tmp | wc -l]\"\n");
    assert_eq!(csv(d, "SELECT envp FROM exec WHERE comm = 'wc'"), "envp\n[SECRET_TOKEN=<redacted>]\n");
    assert_eq!(
        csv(d, "SELECT c.comm FROM exec c JOIN exec p ON c.parent_exec_id = p.exec_id WHERE p.comm = 'bash' ORDER BY c.comm"),
        "comm\nls\nwc\n"
    );
    let json = ok(d, &["--format", "json", "SELECT comm, argv, tty FROM exec WHERE comm = 'ls'"]);
    assert_eq!(json, "{\"comm\":\"ls\",\"argv\":[\"ls\",\"-la\",\"/tmp\"],\"tty\":null}\n");
}

#[test]
fn time_filters_prune_partitions_and_rows() {
    let c = capture();
    let d = c.path();
    let n = |args: &[&str]| ok(d, &[&["--format", "csv"], args, &["SELECT count(*) AS n FROM exec"]].concat());
    assert_eq!(n(&["--since", "2026-01-15T11:00:00Z"]), "n\n5\n");
    assert_eq!(n(&["--until", "2026-01-15 11:00"]), "n\n3\n");
    assert_eq!(n(&["--since", "2026-01-15T10:00:01.001Z", "--until", "2026-01-15T11:00:02Z"]), "n\n3\n");
    assert_eq!(n(&["--since", "1h"]), "n\n0\n");
    assert_eq!(n(&["--since", "2026-01-15"]), "n\n8\n");
    assert_eq!(csv(d, "SELECT min(ts) AS first FROM exec"), "first\n2026-01-15T10:00:01.000000Z\n");
    let e = err(d, &["--since", "yesterday", "SELECT 1"], 2);
    assert!(e.starts_with("capq: error: --since: invalid time 'yesterday'"), "{e}");
}

#[test]
fn describe_and_tables_show_descriptions() {
    let c = capture();
    let d = c.path();
    let out = csv(d, "DESCRIBE exec");
    assert!(
        out.starts_with(
            "column_name,data_type,is_nullable,description\nts,\"TIMESTAMP (µs, UTC)\",NO,\"Wall-clock time"
        ),
        "{out}"
    );
    assert!(
        out.contains("\nargv,LIST<VARCHAR>,NO,\"Command-line arguments, one string each; secrets redacted by default"),
        "{out}"
    );
    let all = ok(d, &["--tables"]);
    for t in ["exec:", "exit:", "file:", "net:", "dns:", "module:", "stats:"] {
        assert!(all.contains(t), "{t}");
    }
    assert!(all.contains("parent_exec_id") && all.contains("exec_id of the parent process."));
    // SQL from standard input, several statements.
    let mut child = Command::new(env!("CARGO_BIN_EXE_capq"))
        .arg("--dir")
        .arg(d)
        .args(["--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"SELECT 1 AS a; SELECT 'x;y' AS b;").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), "a\n1\nb\nx;y\n");
}

#[test]
fn error_messages_are_one_clear_line() {
    let c = capture();
    let d = c.path();
    let e = err(d, &["SELECT * FROM nope"], 1);
    assert_eq!(e, "capq: error: unknown table 'nope': the tables are exec, exit, file, net, dns, module, stats (capq --tables lists their columns)\n");
    let e = err(d, &["SELECT nope FROM exec"], 1);
    assert!(e.starts_with("capq: error: ") && e.contains("nope"), "{e}");
    let e = err(d, &["SELEC 1"], 1);
    assert!(e.starts_with("capq: error: SQL syntax error"), "{e}");
    let e = err(&d.join("missing"), &["SELECT 1"], 2);
    assert!(e.contains("missing does not exist: pass --dir DIR or set CAPQ_DIR"), "{e}");
    let e = err(d, &["--format", "parquet", "SELECT 1"], 2);
    assert_eq!(e, "capq: error: --format parquet writes a file: add --output FILE\n");
    let e = err(d, &["DESCRIBE nope"], 1);
    assert!(e.starts_with("capq: error: unknown table 'nope'"), "{e}");
}

#[test]
fn corrupt_segments_are_skipped_and_named_and_hidden_files_ignored() {
    let c = capture();
    let d = c.path();
    let seg = list_segments(d, Table::Exec)[0].clone();
    let bytes = std::fs::read(&seg).unwrap();
    let bad: PathBuf = seg.with_file_name("exec-truncated.parquet");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    // In-progress files are hidden and never read, whatever they hold.
    std::fs::write(seg.with_file_name(".exec-1-1.parquet.tmp"), b"garbage").unwrap();
    std::fs::write(seg.with_file_name(".hidden.parquet"), b"garbage").unwrap();
    let o = capq(d, &["--format", "csv", "SELECT count(*) AS n FROM exec"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n8\n");
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains(&format!("capq: warning: skipping {}: corrupt or truncated segment", bad.display())), "{e}");
    // A footer whose embedded Arrow schema makes arrow-ipc panic (found by fuzzing): one
    // warning, no panic message.
    let odd = seg.with_file_name("exec-malformed-schema.parquet");
    // This run's package directory, not the compile-time one (see schemas/tests/layout.rs).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    std::fs::copy(format!("{manifest_dir}/../schemas/tests/data/malformed-arrow-schema.parquet"), &odd).unwrap();
    let o = capq(d, &["--format", "csv", "SELECT count(*) AS n FROM exec"]);
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(3), "n\n8\n"), "{e}");
    assert!(
        e.contains(&format!(
            "capq: warning: skipping {}: unreadable schema: its embedded Arrow schema is malformed",
            odd.display()
        )) && !e.contains("panicked"),
        "{e}"
    );
    std::fs::remove_file(&odd).unwrap();
    // A query that does not read exec hears nothing of it.
    assert_eq!(csv(d, "SELECT count(*) AS n FROM file"), "n\n1000\n");
    std::fs::remove_file(&bad).unwrap();
    assert_eq!(csv(d, "SELECT count(*) AS n FROM exec"), "n\n8\n");
}

#[test]
fn a_segment_corrupt_behind_its_footer_is_named_and_skipped_before_anything_is_printed() {
    let c = capture();
    let d = c.path();
    let seg = list_segments(d, Table::File)[0].clone();
    let want = ok(d, &["--format", "json", "SELECT * FROM file ORDER BY ktime_ns"]);
    // A copy whose footer is intact and whose middle is 256 bytes of 0xff (what issue 12
    // did): the catalog's footer check passes it, reading its pages fails.
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 256].fill(0xff);
    let bad = seg.with_file_name("file-corrupt.parquet");
    std::fs::write(&bad, &bytes).unwrap();
    for format in ["json", "csv", "table"] {
        let o = capq(d, &["--format", format, "SELECT * FROM file ORDER BY ktime_ns"]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{format}: {e}");
        // Named by reading it whole, after the query failed: not by the footer check.
        assert!(
            e.starts_with(&format!("capq: warning: skipping {}: corrupt data in segment", bad.display())),
            "{format}: {e}"
        );
        assert_eq!(e.lines().count(), 2, "the segment, then the verdict: {e}");
        if format == "json" {
            assert_eq!(String::from_utf8_lossy(&o.stdout), want, "the answer from the rest, printed once");
        }
    }
    // Into a Parquet file: written again from the start.
    let out = d.join("out.parquet");
    let o = capq(d, &["--format", "parquet", "--output", out.to_str().unwrap(), "SELECT * FROM file"]);
    assert_eq!(o.status.code(), Some(3));
    let r = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(r.metadata().file_metadata().num_rows(), 1000);
}

#[test]
fn directories_that_are_not_partitions_are_named_and_skipped() {
    let c = capture();
    let d = c.path();
    let seg = list_segments(d, Table::Exec)[0].clone();
    let hour_dir = seg.parent().unwrap();
    let bad_day = d.join("exec/dt=notadate/hr=10");
    let bad_hour = hour_dir.parent().unwrap().join("hr=zz");
    for dir in [&bad_day, &bad_hour] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(&seg, dir.join(seg.file_name().unwrap())).unwrap();
    }
    let o = capq(d, &["--format", "csv", "SELECT count(*) AS n FROM exec"]);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).as_ref()), (Some(3), "n\n8\n"));
    let e = String::from_utf8(o.stderr).unwrap();
    for (dir, want) in
        [(bad_day.parent().unwrap(), "host=NAME or dt=YYYY-MM-DD"), (bad_hour.as_path(), "hr=00 to hr=23")]
    {
        let line =
            format!("capq: warning: skipping {}: not a partition directory (expected {want}): ignored", dir.display());
        assert!(e.contains(&line), "{line} in {e}");
    }
    assert_eq!(csv(d, "SELECT count(*) AS n FROM file"), "n\n1000\n");
}

#[test]
fn read_only_unless_allowed() {
    let c = capture();
    let d = c.path();
    let target = d.join("kept.parquet");
    std::fs::write(&target, b"mine").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    for sql in [
        format!("COPY (SELECT 'x' AS a) TO '{}'", target.display()),
        format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'", target.display()),
        "CREATE VIEW v AS SELECT 1".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "INSERT INTO exec SELECT * FROM exec".to_string(),
        format!("EXPLAIN COPY (SELECT 1) TO '{}'", target.display()),
    ] {
        let e = err(d, &[&sql], 1);
        assert!(
            e.starts_with("capq: error: capq only reads the capture's tables") && e.contains("--allow-writes"),
            "{sql}: {e}"
        );
    }
    let m = std::fs::metadata(&target).unwrap();
    assert_eq!((std::fs::read(&target).unwrap(), m.permissions().mode() & 0o777), (b"mine".to_vec(), 0o600));
    // Allowed, COPY writes.
    let out = d.join("copied.csv");
    ok(d, &["--allow-writes", "--format", "csv", &format!("COPY (SELECT 1 AS a) TO '{}'", out.display())]);
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("a\n1"));
    // --output files are created 0640, an existing one keeps its mode.
    let o = d.join("out.csv");
    ok(d, &["--format", "csv", "--output", o.to_str().unwrap(), "SELECT 1 AS a"]);
    assert_eq!(std::fs::metadata(&o).unwrap().permissions().mode() & 0o777, 0o640);
    ok(d, &["--format", "csv", "--output", target.to_str().unwrap(), "SELECT 1 AS a"]);
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn deep_sql_plans_or_fails_in_one_line() {
    let c = capture();
    let d = c.path();
    let sum = format!("SELECT {} AS n", vec!["1"; 5000].join("+"));
    assert_eq!(csv(d, &sum), "n\n5000\n");
    let ors: Vec<String> = (0..5000).map(|i| format!("pid = {i}")).collect();
    // Through capq() so a failure prints one line, not the statement.
    let o = capq(d, &["--format", "csv", &format!("SELECT count(*) AS n FROM exec WHERE {}", ors.join(" OR "))]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the 5,000-term OR chain: {}", e.lines().next().unwrap_or_default());
    assert_eq!(String::from_utf8_lossy(&o.stdout), csv(d, "SELECT count(*) AS n FROM exec WHERE pid < 5000"));
    // MAX_DEPTH + 1 terms: MAX_DEPTH levels of + over the leaves, one more than capq plans.
    let deeper = format!("SELECT {}", vec!["1"; capq::MAX_DEPTH + 1].join("+"));
    let o = capq(d, &[&deeper]);
    let e = String::from_utf8_lossy(&o.stderr);
    let want =
        format!("capq: error: a statement's expressions nest {} deep, more than capq plans", capq::MAX_DEPTH + 1);
    assert!(o.status.code() == Some(1) && e.lines().count() == 1 && e.starts_with(&want), "{e}");
}

#[test]
fn parquet_output_and_table_format() {
    let c = capture();
    let d = c.path();
    let out = d.join("result.parquet");
    ok(d, &["--format", "parquet", "--output", out.to_str().unwrap(), "SELECT pid, comm, argv FROM exec ORDER BY pid"]);
    let r = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(r.metadata().file_metadata().num_rows(), 8);
    // Strings as plain Utf8, as in the capture's segments, though capq reads them as views.
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap())
        .unwrap();
    use datafusion::arrow::datatypes::DataType;
    assert_eq!(b.schema().field_with_name("comm").unwrap().data_type(), &DataType::Utf8);
    assert!(
        matches!(b.schema().field_with_name("argv").unwrap().data_type(), DataType::List(i) if i.data_type() == &DataType::Utf8)
    );
    // argv is read as a list of views straight from the reader (dictscan::ViewLists), and
    // answers as before.
    let o = capq(
        d,
        &["-vv", "--format", "csv", "SELECT array_to_string(argv, ' ') AS a FROM exec WHERE array_has(argv, '-c')"],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("reads its lists of strings as lists of views"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("bash -c"), "{}", String::from_utf8_lossy(&o.stdout));
    let table = ok(d, &["--max-width", "12", "SELECT comm, argv FROM exec WHERE comm = 'bash'"]);
    assert_eq!(
        table,
        "+------+--------------+\n| comm | argv         |\n+------+--------------+\n| bash | [bash, -c, … |\n+------+--------------+\n1 row\n"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let c = capture();
    let mut child = Command::new(env!("CARGO_BIN_EXE_capq"))
        .arg("--dir")
        .arg(c.path())
        .args(["--format", "csv", "SELECT f.path, e.argv FROM file f CROSS JOIN exec e CROSS JOIN exec e2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_statement_reads_the_footers_of_the_tables_it_names_only() {
    // Each table is listed and its footers read when a statement first names it: once per
    // run, however many statements name it; never for one no statement names.
    let c = capture();
    let d = c.path();
    let loaded = |args: &[&str]| -> Vec<String> {
        let o = capq(d, &[&["-vv", "--format", "csv"], args].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        let mut t: Vec<String> = e
            .lines()
            .filter(|l| l.contains("segments registered"))
            .map(|l| l.split("debug: ").nth(1).unwrap().split(':').next().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert!(loaded(&["SELECT 1"]).is_empty());
    assert_eq!(loaded(&["SELECT count(*) FROM file; SELECT count(*) FROM file WHERE pid > 1"]), ["file"]);
    assert_eq!(
        loaded(&["SELECT count(*) FROM exec e JOIN exit x ON e.exec_id = x.exec_id; SELECT count(*) FROM exec"]),
        ["exec", "exit"]
    );
    // A table no statement read is still there, with its columns.
    assert!(csv(d, "SELECT column_name FROM information_schema.columns WHERE table_name = 'dns'").contains("qname"));
    // With --allow-writes every table is read before the first statement, so a view made
    // under a table's name stays that view.
    let all = ["dns", "exec", "exit", "file", "module", "net", "stats"];
    assert_eq!(loaded(&["--allow-writes", "SELECT 1"]), all);
    let view = "CREATE OR REPLACE VIEW exec AS SELECT 1 AS x; SELECT * FROM exec";
    let out = ok(d, &["--allow-writes", "--format", "csv", view]);
    assert!(out.ends_with("\nx\n1\n"), "{out}");
}

#[test]
fn hosts_are_a_column_and_captures_written_before_the_host_level_still_read() {
    let c = capture();
    let d = c.path();
    assert_eq!(csv(d, "SELECT host, count(*) AS n FROM exec GROUP BY host"), "host,n\nh,8\n");
    // A second host's segments beside the first's, and the first's moved to the layout
    // of captures written before the host level (`exec/dt=/hr=`): the host comes from the
    // footer there.
    let other = tempfile::tempdir().unwrap();
    let cron = task(300, 1, "cron", 5, 1);
    let mut r = Vec::new();
    exec(&mut r, &cron, 1_000_000_000_000, "/usr/sbin/cron", &["cron"]);
    let mut d2 = Decoder::new(1 << 16, SEED, EnvpMode::Redacted);
    d2.decode(Probe::Exec, &r).unwrap();
    let cfg = Arc::new(WriterConfig::new(other.path(), HostInfo::fixed("db 2", "b")));
    let mut w = SegmentWriter::new(Table::Exec, cfg, Health::new(), Arc::new(Retention::unlimited()));
    w.write(d2.builders.finish(Table::Exec, H10 - 1_000_000_000_000).unwrap()).unwrap();
    w.publish().unwrap();
    std::fs::rename(other.path().join("exec/host=db_2"), d.join("exec/host=db_2")).unwrap();
    for dt in std::fs::read_dir(d.join("exec/host=h")).unwrap() {
        let dt = dt.unwrap();
        std::fs::rename(dt.path(), d.join("exec").join(dt.file_name())).unwrap();
    }
    std::fs::remove_dir(d.join("exec/host=h")).unwrap();
    assert!(d.join("exec/dt=2026-01-15/hr=10").is_dir());
    assert_eq!(csv(d, "SELECT host, count(*) AS n FROM exec GROUP BY host ORDER BY host"), "host,n\ndb_2,1\nh,8\n");
    assert_eq!(csv(d, "SELECT count(*) AS n FROM exec WHERE host = 'db_2' AND comm = 'cron'"), "n\n1\n");
    let n = ok(d, &["--format", "csv", "--since", "2026-01-15T11:00:00Z", "SELECT count(*) AS n FROM exec"]);
    assert_eq!(n, "n\n5\n", "time pruning over both layouts");
    let described = ok(d, &["--format", "csv", "DESCRIBE exec"]);
    assert!(described.lines().last().unwrap().starts_with("host,VARCHAR,NO,\"The recording host"), "{described}");
}

#[test]
fn stats_segments_written_before_the_upload_columns_read_them_as_null() {
    let c = capture();
    let d = c.path();
    // A stats segment of schema version 4: the columns up to `segments`, no upload_*.
    let health = Health::new();
    let now = std::time::Instant::now();
    let mut e = agent_linux::stats::StatsEmitter::new(&[Probe::Exec], now);
    let full = e.emit(&health, now, H10 / 1000 + 5_000_000);
    let v4 = full.project(&(0..13).collect::<Vec<_>>()).unwrap();
    assert_eq!(v4.schema().field(12).name(), "segments");
    let part = d.join("stats/dt=2026-01-15/hr=10");
    std::fs::create_dir_all(&part).unwrap();
    let f = std::fs::File::create(part.join("stats-v4.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, v4.schema(), None).unwrap();
    w.write(&v4).unwrap();
    w.close().unwrap();
    assert_eq!(
        csv(d, "SELECT probe, segments, upload_segments IS NULL AS no_upload, host FROM stats"),
        "probe,segments,no_upload,host\nexec,0,true,unknown\n"
    );
}

/// The rows a scan's own filter kept and dropped while decoding, from `EXPLAIN ANALYZE`
/// (0 and 0 when the filter ran above the scan). Counts print as `935` or `1.00 K`.
fn pushed_rows(d: &Path, args: &[&str], sql: &str) -> (u64, u64) {
    let plan = ok(d, &[&["--format", "csv"], args, &[&format!("EXPLAIN ANALYZE {sql}")]].concat());
    let sum = |metric: &str| -> u64 {
        plan.split(metric)
            .skip(1)
            .map(|s| {
                let num = s.split(|c: char| !c.is_ascii_digit() && c != '.').next().unwrap();
                let scale = match s[num.len()..].split([',', ']']).next().unwrap().trim() {
                    "K" => 1e3,
                    "M" => 1e6,
                    _ => 1.0,
                };
                (num.parse::<f64>().unwrap() * scale).round() as u64
            })
            .sum()
    };
    (sum("pushdown_rows_matched="), sum("pushdown_rows_pruned="))
}

#[test]
fn scans_filter_while_decoding_only_where_that_skips_other_columns() {
    let c = capture();
    let d = c.path();
    // A second segment, the scan's middle one, where the rule samples the filter.
    write_files(d, 6, 50_000);
    let top = csv(
        d,
        "SELECT pid, count(*) AS n, sum(bytes_written) AS w FROM file GROUP BY pid HAVING count(*) > 2 ORDER BY n, pid LIMIT 1",
    );
    let row: Vec<&str> = top.lines().nth(1).unwrap().split(',').collect();
    let (pid, w) = (row[0], row[2]);
    let n: u64 = row[1].parse().unwrap();
    assert!(n < 50, "a rare pid: {top}");
    let rows: u64 = csv(d, "SELECT count(*) AS n FROM file").lines().nth(1).unwrap().parse().unwrap();
    // A point filter reading another column: pid is decoded first, bytes_written for the
    // rows that pass; the rows are the same as the group-by's. With a time window too.
    let point = format!("SELECT count(*) AS n, sum(bytes_written) AS w FROM file WHERE pid = {pid}");
    for args in [&[][..], &["--since", "2026-01-15"][..]] {
        assert_eq!(ok(d, &[&["--format", "csv"], args, &[&point]].concat()), format!("n,w\n{n},{w}\n"));
        // Past 1,000 the counts print rounded (`51.00 K`). Row groups whose bloom filter
        // says the pid is not there are not decoded: fewer are dropped than the others.
        let (kept, dropped) = pushed_rows(d, args, &point);
        assert_eq!(kept, n, "{args:?} {point}");
        assert!(dropped > 0 && dropped <= rows - n + 10, "{args:?} {point}: {dropped} dropped of {rows}");
    }
    // Not where it costs: the filter's column alone, a nested column, a join, a range, a
    // time window alone (it mostly keeps every row), values that many rows scattered
    // through the segment hold (a run of kept rows in far fewer than 256 rows).
    let ops = csv(d, "SELECT op, count(*) AS n FROM file GROUP BY op ORDER BY n DESC LIMIT 1");
    let (op, op_rows) = ops.lines().nth(1).unwrap().split_once(',').unwrap();
    let op_rows: u64 = op_rows.parse().unwrap();
    assert!(op_rows > rows / 4 && op_rows < rows, "{ops}");
    let open = format!("SELECT count(*) AS n, sum(bytes_written) AS w FROM file WHERE op = '{op}'");
    // A window that keeps only the last 100 rows: the sample counts the runs of the part
    // that asks for values (the window alone would leave it a few dozen).
    let late = csv(d, "SELECT ts FROM file ORDER BY ts DESC LIMIT 1 OFFSET 100");
    let late = late.lines().nth(1).unwrap().to_string();
    for (args, sql) in [
        (&[][..], open.clone()),
        (&["--since", "2026-01-15"], open.clone()),
        (&["--since", &late], open.clone()),
        (&[][..], format!("SELECT count(*) AS n FROM file WHERE pid = {pid}")),
        (&[], "SELECT count(*) AS n, max(pid) AS p FROM exec WHERE array_has(argv, '-la')".to_string()),
        (&[], format!("SELECT count(*) AS n, sum(f.bytes_written) AS w FROM file f JOIN exec e ON f.exec_id = e.exec_id WHERE f.pid = {pid}")),
        (&[], "SELECT count(*) AS n, sum(bytes_written) AS w FROM file WHERE pid > 0".to_string()),
        (&["--since", "2026-01-15"], "SELECT count(*) AS n, sum(bytes_written) AS w FROM file".to_string()),
    ] {
        assert_eq!(pushed_rows(d, args, &sql), (0, 0), "{args:?} {sql}");
    }
    assert_eq!(csv(d, "SELECT count(*) AS n, max(pid) AS p FROM exec WHERE array_has(argv, '-la')"), "n,p\n1,101\n");
}

#[test]
fn joins_with_a_side_of_a_few_million_rows_build_one_hash_table() {
    // 200,000 rows a side: past DataFusion's default (131,072 rows, 1 MiB), within capq's.
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 7, 200_000);
    let d = dir.path();
    let sql = "SELECT count(*) AS n FROM file a JOIN file b ON a.file_id = b.file_id";
    let plan = csv(d, &format!("EXPLAIN {sql}"));
    assert!(plan.contains("HashJoinExec: mode=CollectLeft"), "{plan}");
    let pairs = csv(
        d,
        "SELECT sum(c * c) AS n FROM (SELECT count(*) AS c FROM file WHERE file_id IS NOT NULL GROUP BY file_id)",
    );
    assert_eq!(csv(d, sql), pairs);
    assert_ne!(pairs, "n\n0\n");
}

#[test]
fn a_lookup_of_one_process_reads_only_the_row_groups_that_may_hold_it() {
    // Two row groups, each with a bloom filter on pid (the recorder's writer): a pid
    // between the least and the greatest but in neither is found in no row group.
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 12, 200_000);
    let d = dir.path();
    let pids: std::collections::BTreeSet<i64> =
        csv(d, "SELECT DISTINCT pid FROM file").lines().skip(1).map(|l| l.parse().unwrap()).collect();
    let (lo, hi) = (*pids.first().unwrap(), *pids.last().unwrap());
    let absent = (lo..hi).find(|p| !pids.contains(p)).unwrap();
    let plan = csv(d, &format!("EXPLAIN ANALYZE SELECT count(*) AS n FROM file WHERE pid = {absent}"));
    assert!(plan.contains("row_groups_pruned_bloom_filter=2 total → 0 matched"), "{plan}");
    assert_eq!(csv(d, &format!("SELECT count(*) AS n FROM file WHERE pid = {absent}")), "n\n0\n");
    // One that is there: counted as without the filters' help.
    let p = pids.iter().nth(pids.len() / 2).unwrap();
    let n = csv(d, &format!("SELECT count(*) AS n FROM file WHERE pid = {p}"));
    assert_eq!(n, csv(d, &format!("SELECT count(*) AS n FROM file WHERE pid + 0 = {p}")));
    assert_ne!(n, "n\n0\n");
}

/// What `EXPLAIN ANALYZE` says of a StringGroupBy's partitions ("keyed in K of N
/// partitions (D with the keys as group indices)"), in words that do not depend on how
/// many partitions this machine's CPUs make.
fn keyed_in(plan: &str) -> String {
    let Some(at) = plan.find("keyed in ") else { return "not run".into() };
    let n: Vec<usize> = plan[at..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(|w| w.parse().unwrap())
        .collect();
    let of = |k: usize| match k {
        0 => "none",
        k if k == n[1] => "all",
        _ => "some",
    };
    let keyed = if n[0] == n[1] { "all partitions".to_string() } else { format!("{} partitions", of(n[0])) };
    format!("keyed in {keyed}, {} with the keys as group indices", of(n[2]))
}

#[test]
fn a_group_by_on_a_string_column_groups_on_keys_and_answers_the_same() {
    // Real segments, two row groups (two dictionaries): the keys' memory across buffers
    // that change is tested in groupkeys.rs, where a stale key changes the answer.
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 11, 200_000);
    let d = dir.path();
    // Each group-by, what EXPLAIN ANALYZE says of it, and the same on an expression, which
    // the rule leaves to DataFusion.
    let cases = [
        // The keys as group indices: one group column, long strings or short (`op`).
        (
            "SELECT path, count(*) AS n, sum(bytes_read) AS r, max(pid) AS p FROM file GROUP BY path",
            "keyed in all partitions, all with the keys as group indices",
            "SELECT path || '' AS path, count(*) AS n, sum(bytes_read) AS r, max(pid) AS p FROM file GROUP BY 1",
            " ORDER BY n DESC, path",
        ),
        (
            "SELECT op, count(*) AS n, sum(bytes_read) AS r, avg(bytes_written) AS w FROM file GROUP BY op",
            "keyed in all partitions, all with the keys as group indices",
            "SELECT op || '' AS op, count(*) AS n, sum(bytes_read) AS r, avg(bytes_written) AS w FROM file GROUP BY 1",
            " ORDER BY op",
        ),
        // Two group columns: `path` keyed, DataFusion groups the keys and `comm`.
        (
            "SELECT path, comm, count(*) AS n FROM file GROUP BY path, comm",
            "keyed in all partitions, none with the keys as group indices",
            "SELECT path || '' AS path, comm || '' AS comm, count(*) AS n FROM file GROUP BY 1, 2",
            " ORDER BY n DESC, path, comm",
        ),
    ];
    for (keyed, says, plain, order) in cases {
        let plan = csv(d, &format!("EXPLAIN ANALYZE {keyed}"));
        assert!(plan.contains("StringGroupBy: ") && keyed_in(&plan) == says, "{keyed}: {plan}");
        assert!(!csv(d, &format!("EXPLAIN {plain}")).contains("StringGroupBy"));
        let (a, b) = (csv(d, &format!("{keyed}{order}")), csv(d, &format!("{plain}{order}")));
        assert!(a.lines().count() > 4, "{a}");
        assert_eq!(a, b, "{keyed}");
    }
}

#[test]
fn strings_read_as_dictionaries_answer_as_views_do() {
    // Two hosts (a union of scans), and in the first a segment of an older schema version
    // (without the trailing *_raw columns): each file is read with its own schema.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(d, 17, 60_000);
    let mut s = Synth::new(18);
    let mut dec = Decoder::new(1 << 16, SEED, EnvpMode::Redacted);
    for _ in 0..30_000 {
        let mut r = Vec::new();
        s.file(&mut r);
        dec.decode(Probe::File, &r).unwrap();
    }
    let batch = dec.builders.finish(Table::File, H10 - 3_700_000_000_000 + 60_000_000_000).unwrap();
    let n = batch.num_columns();
    assert_eq!(batch.schema().field(n - 3).name(), "path_raw");
    let old = batch.project(&(0..n - 3).collect::<Vec<_>>()).unwrap();
    // A column read as a dictionary with nulls in it: abs_path, null in one row in 7 of
    // this segment (a path the recorder could not resolve).
    let mut cols = old.columns().to_vec();
    let at = old.schema().index_of("abs_path").unwrap();
    let unresolved = BooleanArray::from_iter((0..old.num_rows()).map(|r| Some(r % 7 == 3)));
    cols[at] = datafusion::arrow::compute::nullif(&cols[at], &unresolved).unwrap();
    let old = RecordBatch::try_new(old.schema(), cols).unwrap();
    let part = d.join("file/host=h/dt=2026-01-15/hr=10");
    let f = std::fs::File::create(part.join("file-old.parquet")).unwrap();
    // path2 without a dictionary, as the recorder wrote it until 2026-12-02: a group-by
    // reads a column that one file holds PLAIN as views from every file.
    let plain_path2 = parquet::file::properties::WriterProperties::builder()
        .set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from("path2"), false)
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, old.schema(), Some(plain_path2)).unwrap();
    w.write(&old).unwrap();
    w.close().unwrap();
    let other = tempfile::tempdir().unwrap();
    let cfg = Arc::new(WriterConfig::new(other.path(), HostInfo::fixed("db 2", "b")));
    let mut w = SegmentWriter::new(Table::File, cfg, Health::new(), Arc::new(Retention::unlimited()));
    w.write(batch).unwrap();
    w.publish().unwrap();
    std::fs::rename(other.path().join("file/host=db_2"), d.join("file/host=db_2")).unwrap();
    let path = csv(d, "SELECT path FROM file GROUP BY path ORDER BY count(*) DESC LIMIT 1");
    let path = path.lines().nth(1).unwrap();
    // Each query, what its plan says, and the same on expressions (`|| ''`), which no rule
    // of capq's reads as dictionaries: group-bys with nulls (`abs_path`, `closed_by`, `path2`), two
    // keyed columns, a filter under a group-by; comparisons read nowhere else.
    let cases = [
        (
            "SELECT path, count(*) AS n, sum(bytes_read) AS r FROM file GROUP BY path",
            "SELECT path || '' AS path, count(*) AS n, sum(bytes_read) AS r FROM file GROUP BY 1",
            "on keys of their dictionaries",
        ),
        (
            "SELECT abs_path, count(*) AS n FROM file GROUP BY abs_path",
            "SELECT abs_path || '' AS abs_path, count(*) AS n FROM file GROUP BY 1",
            "on keys of their dictionaries",
        ),
        (
            "SELECT closed_by, count(*) AS n FROM file GROUP BY closed_by",
            "SELECT closed_by || '' AS closed_by, count(*) AS n FROM file GROUP BY 1",
            "closed_by@0 on keys of their dictionaries",
        ),
        (
            "SELECT path2, count(*) AS n FROM file GROUP BY path2",
            "SELECT path2 || '' AS path2, count(*) AS n FROM file GROUP BY 1",
            // One file holds path2 without a dictionary (above): read as views.
            "path2@0 on keys where their views repeat",
        ),
        (
            "SELECT path2, path, count(*) AS n FROM file GROUP BY path2, path",
            "SELECT path2 || '' AS path2, path || '' AS path, count(*) AS n FROM file GROUP BY 1, 2",
            "where their views repeat",
        ),
        (
            "SELECT path, count(*) AS n FROM file WHERE op = 'open' GROUP BY path",
            "SELECT path || '' AS path, count(*) AS n FROM file WHERE op || '' = 'open' GROUP BY 1",
            "= open (on dictionaries)",
        ),
        (
            "SELECT count(*) AS n FROM file WHERE path = '{path}'",
            "SELECT count(*) AS n FROM file WHERE path || '' = '{path}'",
            "(on dictionaries)",
        ),
        (
            "SELECT count(*) AS n FROM file WHERE path <> '{path}' AND pid > 0",
            "SELECT count(*) AS n FROM file WHERE path || '' <> '{path}' AND pid > 0",
            "(on dictionaries)",
        ),
        (
            "SELECT count(*) AS n FROM file WHERE abs_path = '{path}' OR path2 <> ''",
            "SELECT count(*) AS n FROM file WHERE abs_path || '' = '{path}' OR path2 || '' <> ''",
            // The segments' path2 compared on dictionaries, the old file's on views (below).
            "path2@1 !=  (on dictionaries)",
        ),
        (
            "SELECT count(*) AS n FROM file WHERE abs_path = '{path}' OR closed_by = 'close'",
            "SELECT count(*) AS n FROM file WHERE abs_path || '' = '{path}' OR closed_by || '' = 'close'",
            "(on dictionaries)",
        ),
        (
            "SELECT count(*) AS n FROM file WHERE abs_path = '{path}' OR comm = 'bash'",
            "SELECT count(*) AS n FROM file WHERE abs_path || '' = '{path}' OR comm || '' = 'bash'",
            "(on dictionaries)",
        ),
    ];
    for (q, p, says) in cases {
        let (q, p) = (q.replace("{path}", path), p.replace("{path}", path));
        let plan = csv(d, &format!("EXPLAIN {q}"));
        assert!(plan.contains(says), "{q}: {plan}");
        assert!(!csv(d, &format!("EXPLAIN {p}")).contains("dictionaries"), "{p}");
        if !says.contains("dictionaries") {
            assert!(!plan.contains("dictionaries"), "{q}: {plan}");
        }
        let order = if q.contains("GROUP BY") { " ORDER BY 1, 2" } else { "" };
        let (a, b) = (csv(d, &format!("{q}{order}")), csv(d, &format!("{p}{order}")));
        assert!(a.lines().count() > 2 || !a.contains("n\n0\n"), "{q}: {a}");
        assert_eq!(a, b, "{q}");
    }
    // A filter reads each file as that file holds the column: the scan of the segments
    // (path2 with a dictionary) on dictionaries, the old file's (path2 PLAIN) on views.
    let plan = csv(d, &format!("EXPLAIN SELECT count(*) AS n FROM file WHERE abs_path = '{path}' OR path2 <> ''"));
    assert!(plan.contains("path2@1 !=  (on dictionaries)") && plan.contains("path2@1 !=  (on views)"), "{plan}");
    // A null group is there, and rows of both hosts and of the old segment.
    let nulls = csv(d, "SELECT closed_by, count(*) AS n FROM file GROUP BY closed_by ORDER BY 1 NULLS FIRST LIMIT 1");
    assert!(nulls.starts_with("closed_by,n\n,"), "{nulls}");
    let nulls = csv(d, "SELECT abs_path, count(*) AS n FROM file GROUP BY abs_path ORDER BY 1 NULLS FIRST LIMIT 1");
    assert_eq!(nulls, "abs_path,n\n,4286\n");
    assert_eq!(csv(d, "SELECT count(*) AS n FROM file"), "n\n120000\n");
}

#[test]
fn external_tables_over_capture_segments_keep_their_lists_as_datafusion_reads_them() {
    // With --allow-writes every capture table is read first, so its segments' schemas are
    // known; a table made over the same files has argv as DataFusion reads it (a list of
    // strings), and a column read as a dictionary beside it (the group-by's) must not make
    // it views.
    let c = capture();
    let d = c.path();
    let dir = d.join("exec");
    let sql = format!(
        "CREATE EXTERNAL TABLE ext STORED AS PARQUET LOCATION '{}/'; \
         SELECT array_to_string(argv, ' ') AS a, arrow_typeof(argv) AS t FROM ext WHERE comm = 'bash'; \
         SELECT comm, count(*) AS n, max(cardinality(argv)) AS m, min(arrow_typeof(argv)) AS t FROM ext \
         GROUP BY comm ORDER BY comm",
        dir.display()
    );
    let out = ok(d, &["--allow-writes", "--format", "csv", &sql]);
    assert!(out.contains("bash -c") && out.contains("List(non-null Utf8)"), "{out}");
    let l = "List(non-null Utf8)";
    let want = format!("comm,n,m,t\nbash,1,3,{l}\ncron,5,2,{l}\nls,1,3,{l}\nwc,1,2,{l}\n");
    assert!(out.contains(&want), "{out}");
    // Lists of views in any nesting are written to a Parquet output as plain strings.
    let o = d.join("agg.parquet");
    ok(
        d,
        &[
            "--format",
            "parquet",
            "--output",
            o.to_str().unwrap(),
            "SELECT comm, array_agg(argv) AS a FROM exec GROUP BY comm",
        ],
    );
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&o).unwrap())
        .unwrap();
    let t = format!("{:?}", b.schema().field_with_name("a").unwrap().data_type());
    assert!(t.contains("Utf8") && !t.contains("View"), "{t}");
}

#[test]
fn datafusion_reads_no_footer_the_catalog_read() {
    // The catalog hands DataFusion each footer it read; a query then takes them from
    // DataFusion's metadata cache (adding the page index to each), where a miss (another
    // location, size or time than the store gives) would read and decode each again and
    // cache that beside the catalog's.
    use capq::catalog::{self, Report, Source, Window};
    use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::prelude::SessionContext;
    use object_store::ObjectStoreExt;

    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 5, 20_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let ctx = SessionContext::new();
        let local = ObjectStoreUrl::local_filesystem();
        ctx.register_object_store(local.as_ref(), Arc::new(capq::localfs::InlineLocal::new()));
        let store = ctx.runtime_env().object_store(&local).unwrap();
        let mut report = Report::default();
        let (src, window) = (Source::Local(dir.path().to_path_buf()), Window { since: None, until: None });
        catalog::load(&ctx, &src, Table::File, window, &mut report, &Default::default()).await.unwrap();
        let cache = ctx.runtime_env().cache_manager.get_file_metadata_cache();
        let footers = || {
            let mut e: Vec<_> = cache.list_entries().into_iter().collect();
            e.sort_by(|a, b| a.0.cmp(&b.0));
            e
        };
        let before = footers();
        assert!(report.segments > 0);
        assert_eq!(before.len(), report.segments);
        for (path, e) in &before {
            let head = store.head(path).await.unwrap();
            assert!(e.value.is_valid_for(&head), "{path}: {:?} against the store's {head:?}", e.value.meta);
        }
        let n =
            ctx.sql("SELECT count(*), sum(bytes_read) FROM file WHERE pid > 1").await.unwrap().collect().await.unwrap();
        assert_eq!(n[0].num_rows(), 1);
        let after = footers();
        let paths = |v: &[(object_store::path::Path, _)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&before), paths(&after), "DataFusion read footers the catalog had not");
        for (path, e) in &after {
            let m = e.value.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>().unwrap();
            assert!(m.parquet_metadata().offset_index().is_some() && e.hits > 0, "{path}: not read through the cache");
        }
    });
}
