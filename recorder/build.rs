//! With the `with-ebpf` feature: compiles the BPF object of every probe in the probe list
//! (`schemas/src/probes.rs`, included here as it is) whose `bpf/<object>.bpf.c` exists,
//! with clang through libbpf-cargo (libbpf's headers, -D__TARGET_ARCH_<arch>), and writes
//! `objects.rs`: each object's name, path and bytes, which the loader embeds.
//! Without it: nothing, so the default build needs neither clang nor libbpf.

#[cfg(feature = "with-ebpf")]
#[allow(dead_code)]
#[path = "../schemas/src/probes.rs"]
mod probes;

fn main() {
    #[cfg(feature = "with-ebpf")]
    objects();
}

#[cfg(feature = "with-ebpf")]
fn objects() {
    use std::fmt::Write as _;
    use std::path::PathBuf;
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let bpf = PathBuf::from(dir).join("../bpf");
    println!("cargo:rerun-if-changed=../schemas/src/probes.rs");
    for entry in std::fs::read_dir(&bpf).expect("bpf/ is there").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".h") || name.ends_with(".bpf.c") {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }
    // Rerun when a probe's source appears.
    println!("cargo:rerun-if-changed={}", bpf.display());
    let mut list = String::from("/// Every compiled probe object: (object, path at build time, bytes).\n");
    list.push_str("pub static OBJECTS: &[(&str, &str, &[u8])] = &[\n");
    for p in probes::PROBES {
        let src = bpf.join(format!("{}.bpf.c", p.object));
        if !src.exists() {
            continue;
        }
        let obj = out.join(format!("{}.bpf.o", p.object));
        let mut b = libbpf_cargo::SkeletonBuilder::new();
        b.source(&src).obj(&obj).clang_args([
            std::ffi::OsString::from("-I"),
            bpf.clone().into_os_string(),
            "-Wall".into(),
            "-Wno-unused-function".into(),
        ]);
        if let Err(e) = b.build() {
            panic!(
                "compiling {} failed: {e:#}\n(the with-ebpf feature needs clang, libelf, zlib and pkg-config: scripts/ebpf-preflight.sh --install)",
                src.display()
            );
        }
        writeln!(list, "    ({:?}, {:?}, include_bytes!({:?})),", p.object, obj, obj).unwrap();
    }
    list.push_str("];\n");
    std::fs::write(out.join("objects.rs"), list).expect("writing objects.rs");
}
