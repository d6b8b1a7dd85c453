//! The Rust mirrors in `schemas/` against the BTF of the compiled BPF objects: every
//! struct each object uses, its size and every field offset. The ABI cannot drift
//! silently between the kernel side and the decoder.
#![cfg(feature = "with-ebpf-load")]

use std::ffi::OsStr;

use agent_linux::abi::ALL_STRUCTS;
use libbpf_rs::btf::types::{MemberAttr, Struct};
use libbpf_rs::btf::{Btf, HasSize};

fn check(object: &str, path: &str, must_have: &[&str]) {
    let btf = Btf::from_path(path).unwrap_or_else(|e| panic!("reading BTF of {path}: {e}"));
    let mut seen = Vec::new();
    for (cname, size, fields) in ALL_STRUCTS {
        let Some(s) = btf.type_by_name::<Struct>(cname) else { continue };
        assert_eq!(s.size(), *size, "{object}: size of struct {cname}");
        for f in *fields {
            let m = s
                .iter()
                .find(|m| m.name == Some(OsStr::new(f.name)))
                .unwrap_or_else(|| panic!("{object}: struct {cname} has no field {}", f.name));
            match m.attr {
                MemberAttr::Normal { offset } => {
                    assert_eq!(offset as usize, f.offset * 8, "{object}: offset of {cname}.{}", f.name)
                }
                MemberAttr::BitField { .. } => panic!("{object}: {cname}.{} is a bit field", f.name),
            }
        }
        seen.push(*cname);
    }
    for want in must_have {
        assert!(seen.contains(want), "{object}: struct {want} not in its BTF (seen: {seen:?})");
    }
}

#[test]
fn compiled_objects_match_the_rust_mirror() {
    // common.bpf.h puts every record type in every object's BTF, so each object is
    // checked against the whole ABI, not only the records it writes.
    let all: Vec<&str> = ALL_STRUCTS.iter().map(|(name, _, _)| *name).collect();
    let mut n = 0;
    for (object, path) in agent_linux::loader::objects() {
        check(object, path, &all);
        n += 1;
    }
    // Every probe in the list whose source exists was built and checked.
    let sources = capture_schemas_probes_with_sources();
    assert_eq!(n, sources, "objects built vs probes with a bpf/<object>.bpf.c");
}

fn capture_schemas_probes_with_sources() -> usize {
    // This run's package directory, not the compile-time one (see schemas/tests/layout.rs).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let bpf = format!("{manifest_dir}/../bpf");
    agent_linux::PROBES.iter().filter(|p| std::path::Path::new(&format!("{bpf}/{}.bpf.c", p.object)).exists()).count()
}
