//! Compiles bpf/events.h with the C compiler and checks every struct size and field offset
//! against the Rust mirror. The BTF of the built BPF objects gets the same check in the
//! live-capture tests; this one needs only `cc`, so it runs in every build.

use std::fmt::Write as _;
use std::process::Command;

use capture_schemas::abi::ALL_STRUCTS;

#[test]
fn rust_mirror_matches_events_h() {
    let dir = tempfile::tempdir().unwrap();
    // The package directory of this run: a target dir shared by two checkouts keeps the
    // test binary of the other, whose compile-time path may be gone.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let header = format!("{manifest_dir}/../bpf/events.h");
    let mut src = format!("#include <stddef.h>\n#include <stdio.h>\n#include \"{header}\"\nint main(void) {{\n");
    for (name, _, fields) in ALL_STRUCTS {
        writeln!(src, "  printf(\"{name} %zu\\n\", sizeof(struct {name}));").unwrap();
        for f in *fields {
            writeln!(
                src,
                "  printf(\"{name}.{f} %zu %zu\\n\", offsetof(struct {name}, {f}), sizeof(((struct {name} *)0)->{f}));",
                f = f.name
            )
            .unwrap();
        }
    }
    src.push_str("  return 0;\n}\n");
    let c_path = dir.path().join("abi.c");
    let bin = dir.path().join("abi");
    std::fs::write(&c_path, src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-Wall", "-Werror", "-Wpadded", "-o"])
        .arg(&bin)
        .arg(&c_path)
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e} (install gcc and linux-libc-dev)"));
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&bin).output().unwrap();
    let c_view = String::from_utf8(out.stdout).unwrap();

    let mut rust_view = String::new();
    for (name, size, fields) in ALL_STRUCTS {
        writeln!(rust_view, "{name} {size}").unwrap();
        for f in *fields {
            writeln!(rust_view, "{name}.{} {} {}", f.name, f.offset, f.size).unwrap();
        }
    }
    assert_eq!(c_view, rust_view, "bpf/events.h and schemas/src/abi.rs disagree");
}

/// Every `#define CAP_*` in bpf/events.h is in `abi::C_CONSTANTS` with the same value, and
/// every entry there is defined in the header: kinds, flags, ops, limits and map sizes
/// cannot drift apart any more than the layouts can.
#[test]
fn rust_constants_match_events_h() {
    use capture_schemas::abi::C_CONSTANTS;
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let header = format!("{manifest_dir}/../bpf/events.h");
    let text = std::fs::read_to_string(&header).unwrap();
    let defined: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("#define "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("CAP_"))
        .collect();
    let listed: Vec<&str> = C_CONSTANTS.iter().map(|(n, _)| *n).collect();
    for name in &defined {
        assert!(listed.contains(name), "{name} is defined in bpf/events.h but not in abi::C_CONSTANTS");
    }
    for name in &listed {
        assert!(defined.contains(name), "abi::C_CONSTANTS has {name}, which bpf/events.h does not define");
    }

    let dir = tempfile::tempdir().unwrap();
    let mut src = format!("#include <stdio.h>\n#include \"{header}\"\nint main(void) {{\n");
    for (name, _) in C_CONSTANTS {
        writeln!(src, "  printf(\"{name} %lld\\n\", (long long)({name}));").unwrap();
    }
    src.push_str("  return 0;\n}\n");
    let c_path = dir.path().join("consts.c");
    let bin = dir.path().join("consts");
    std::fs::write(&c_path, src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc).args(["-Wall", "-Werror", "-o"]).arg(&bin).arg(&c_path).output().unwrap();
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let c_view = String::from_utf8(Command::new(&bin).output().unwrap().stdout).unwrap();
    let rust_view: String = C_CONSTANTS.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    assert_eq!(c_view, rust_view, "bpf/events.h and abi::C_CONSTANTS disagree");
}
