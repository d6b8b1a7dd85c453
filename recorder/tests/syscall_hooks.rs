//! The probes' syscall hooks against their compiled objects: a probe that lists syscalls
//! (`ProbeSpec::syscalls`) has one `fexit` program for each, named `<probe>_fx_<syscall>`
//! (or a `_loop`/`_noloop` pair), and no `fexit` program for any other (besides spares,
//! `<program>_nested` and `_nested2`: none, or both for each); a probe that lists none
//! has no `fexit` program. Read from the objects as built, without loading them.
#![cfg(feature = "with-ebpf-load")]

use agent_linux::loader::{fexit_syscall, objects};
use capture_schemas::PROBES;
use libbpf_rs::ObjectBuilder;

#[test]
fn every_listed_syscall_has_its_fexit_program_and_no_other() {
    for spec in PROBES {
        let Some((_, path)) = objects().find(|(name, _)| *name == spec.object) else { continue };
        let open = ObjectBuilder::default().open_file(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        let mut fexit: Vec<(String, String)> = Vec::new();
        let mut sys_exit = 0;
        for prog in open.progs() {
            let name = prog.name().to_string_lossy().into_owned();
            match prog.section().to_str() {
                Some("fexit") => {
                    let sys = fexit_syscall(&name)
                        .unwrap_or_else(|| panic!("{}: fexit program {name} is not PROBE_fx_SYSCALL", spec.name));
                    assert!(
                        name.starts_with(&format!("{}_fx_", spec.name)),
                        "{}: {name} is not named after its probe",
                        spec.name
                    );
                    fexit.push((sys.to_string(), name));
                }
                Some("tp_btf/sys_exit") => sys_exit += 1,
                _ => {}
            }
        }
        for (sys, name) in &fexit {
            assert!(spec.syscalls.contains(&sys.as_str()), "{}: {name} takes {sys}, not in its syscalls", spec.name);
        }
        // Spares (`<program>_nested`, `<program>_nested2`, bpf/spare.bpf.h): none, or the
        // two for every program.
        let (spares, proper): (Vec<_>, Vec<_>) =
            fexit.iter().partition(|(_, n)| n.ends_with("_nested") || n.ends_with("_nested2"));
        if !spares.is_empty() {
            let mut want: Vec<String> =
                proper.iter().flat_map(|(_, n)| [format!("{n}_nested"), format!("{n}_nested2")]).collect();
            let mut got: Vec<String> = spares.iter().map(|(_, n)| n.clone()).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{}: the spares are not two for each fexit program", spec.name);
        }
        for sys in spec.syscalls {
            let progs: Vec<&str> = proper.iter().filter(|(s, _)| s == sys).map(|(_, n)| n.as_str()).collect();
            let plain = format!("{}_fx_{sys}", spec.name);
            let pair = [format!("{plain}_loop"), format!("{plain}_noloop")];
            assert!(
                progs == [plain.as_str()] || (progs.len() == 2 && pair.iter().all(|p| progs.contains(&p.as_str()))),
                "{}: syscall {sys} has the fexit programs {progs:?}, want {plain} or {pair:?}",
                spec.name
            );
        }
        // The fallback: a probe with syscalls has its tp_btf/sys_exit program(s) too.
        assert_eq!(spec.syscalls.is_empty(), fexit.is_empty(), "{}: fexit programs without syscalls listed", spec.name);
        if !spec.syscalls.is_empty() {
            assert!(sys_exit > 0, "{}: lists syscalls but has no tp_btf/sys_exit program to fall back to", spec.name);
        }
    }
}
