//! With the `with-ebpf` feature: compiles `bpf/*.bpf.c` into BPF objects and libbpf-rs
//! skeletons (libbpf-cargo runs clang, with libbpf's headers and -D__TARGET_ARCH_<arch>).
//! Without it: nothing, so the default build needs neither clang nor libbpf.

fn main() {
    #[cfg(feature = "with-ebpf")]
    skeletons();
}

#[cfg(feature = "with-ebpf")]
fn skeletons() {
    use std::path::PathBuf;
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpf =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("../bpf");
    for header in ["events.h", "common.bpf.h", "vmlinux_min.h"] {
        println!("cargo:rerun-if-changed={}", bpf.join(header).display());
    }
    for name in ["exec_provenance", "file_ops"] {
        let src = bpf.join(format!("{name}.bpf.c"));
        println!("cargo:rerun-if-changed={}", src.display());
        let mut b = libbpf_cargo::SkeletonBuilder::new();
        b.source(&src).obj(out.join(format!("{name}.bpf.o"))).clang_args([
            std::ffi::OsString::from("-I"),
            bpf.clone().into_os_string(),
            "-Wall".into(),
            "-Wno-unused-function".into(),
        ]);
        if let Err(e) = b.build_and_generate(out.join(format!("{name}.skel.rs"))) {
            panic!(
                "compiling {} failed: {e:#}\n(the with-ebpf feature needs clang, libelf, zlib and pkg-config: scripts/ebpf-preflight.sh --install)",
                src.display()
            );
        }
    }
}
