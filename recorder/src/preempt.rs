//! The kernel's preemption model: whether it can preempt a task inside a BPF program that
//! an fexit trampoline runs, which decides the file and module probes' syscall hook.
//!
//! A trampoline runs its program with migration disabled, not preemption, and skips the
//! program for any other task that reaches it on that CPU while the first is still
//! inside (its recursion guard; the skip is counted only in the program's recursion
//! misses). On a kernel that preempts tasks in kernel code (`full`, `lazy`, `rt`) a task
//! preempted inside `file_fx_close` makes the next close on that CPU go unrecorded: on
//! Debian's 7.2 (`lazy`) under qemu, one run in two lost a call this way. A raw tracepoint
//! (`tp_btf/sys_exit`) runs with preemption off, so it has no such gap. `none` and
//! `voluntary` preempt only where kernel code offers to, which a BPF program never does.

use std::path::Path;

/// What the kernel was found to do, and where that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    /// `none`, `voluntary`, `full`, `lazy` or `rt`; `voluntary or none` for a kernel
    /// built without preemption; `None` when nothing said.
    pub model: Option<String>,
    /// Where the model was read (a path, or the kernel's BTF), or what was looked at.
    pub source: String,
}

impl Preemption {
    /// Whether a task can be preempted inside a BPF program (`None`: unknown).
    pub fn preempts(&self) -> Option<bool> {
        let m = self.model.as_deref()?;
        Some(matches!(m, "full" | "lazy" | "rt"))
    }
}

/// The debugfs file of a kernel built with `CONFIG_PREEMPT_DYNAMIC`: the models it can
/// switch between, the current one in parentheses (`none voluntary full (lazy)`).
pub const DEBUGFS: &str = "/sys/kernel/debug/sched/preempt";

/// The current model from [`DEBUGFS`]'s text.
pub fn parse_debugfs(text: &str) -> Option<String> {
    let start = text.find('(')?;
    let end = start + text[start..].find(')')?;
    Some(text[start + 1..end].trim().to_string()).filter(|m| !m.is_empty())
}

/// `preempt=MODEL` from the kernel's command line (a dynamic kernel's boot choice).
pub fn parse_cmdline(cmdline: &str) -> Option<String> {
    cmdline.split_whitespace().filter_map(|w| w.strip_prefix("preempt=")).next_back().map(str::to_string)
}

/// From a kernel config: the model it was built with (a dynamic kernel's default, which
/// `preempt=` on the command line overrides).
pub fn parse_config(config: &str) -> Option<String> {
    let set = |name: &str| config.lines().any(|l| l.trim() == format!("CONFIG_{name}=y"));
    let model = if set("PREEMPT_RT") {
        Some("rt")
    } else if set("PREEMPT") {
        Some("full")
    } else if set("PREEMPT_LAZY") {
        Some("lazy")
    } else if set("PREEMPT_VOLUNTARY") {
        Some("voluntary")
    } else if set("PREEMPT_NONE") {
        Some("none")
    } else {
        None
    };
    model.map(str::to_string)
}

/// The running kernel's config: where distributions put it, or `/proc/config.gz`.
fn read_config(release: &str) -> Option<(String, String)> {
    for path in [format!("/boot/config-{release}"), format!("/lib/modules/{release}/config")] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Some((text, path));
        }
    }
    let gz = std::fs::File::open("/proc/config.gz").ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut text).ok()?;
    Some((text, "/proc/config.gz".into()))
}

/// The running kernel's model. `has_func` answers from the kernel's BTF whether it has a
/// function: `preempt_schedule` exists only in kernels built with preemption, and
/// `sched_dynamic_update` only in dynamic ones. In order: [`DEBUGFS`] (what the kernel
/// runs now); the BTF, for a kernel that cannot preempt at all; `preempt=` on the
/// command line of a dynamic kernel; the config's model.
pub fn detect(has_func: impl Fn(&str) -> bool) -> Preemption {
    if let Some(model) = std::fs::read_to_string(DEBUGFS).ok().as_deref().and_then(parse_debugfs) {
        return Preemption { model: Some(model), source: DEBUGFS.into() };
    }
    if !has_func("preempt_schedule") {
        return Preemption {
            model: Some("voluntary or none".into()),
            source: "the kernel's BTF: built without CONFIG_PREEMPTION".into(),
        };
    }
    if has_func("sched_dynamic_update") {
        if let Some(model) = std::fs::read_to_string("/proc/cmdline").ok().as_deref().and_then(parse_cmdline) {
            return Preemption { model: Some(model), source: "preempt= in /proc/cmdline".into() };
        }
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    match read_config(release.trim()) {
        Some((text, path)) => Preemption { model: parse_config(&text), source: path },
        None => Preemption {
            model: None,
            source: format!(
                "no {DEBUGFS} (debugfs not mounted?), no preempt= on the command line, no kernel config in {}",
                Path::new("/boot").join(format!("config-{}", release.trim())).display()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugfs_names_the_model_in_parentheses() {
        assert_eq!(parse_debugfs("none voluntary full (lazy)\n").as_deref(), Some("lazy"));
        assert_eq!(parse_debugfs("none (voluntary) full\n").as_deref(), Some("voluntary"));
        assert_eq!(parse_debugfs("(none) voluntary full lazy").as_deref(), Some("none"));
        assert_eq!(parse_debugfs("none voluntary full"), None);
        assert_eq!(parse_debugfs(""), None);
    }

    #[test]
    fn the_command_line_choice_is_the_last_preempt_word() {
        assert_eq!(parse_cmdline("console=ttyS0 preempt=full quiet").as_deref(), Some("full"));
        assert_eq!(parse_cmdline("preempt=none preempt=lazy").as_deref(), Some("lazy"));
        assert_eq!(parse_cmdline("console=ttyS0 nopreempt=full quiet"), None);
    }

    #[test]
    fn configs_as_debian_ships_them() {
        // Debian 7.2 (sid): lazy by default, dynamic.
        let sid = "CONFIG_PREEMPT_BUILD=y\nCONFIG_ARCH_HAS_PREEMPT_LAZY=y\n# CONFIG_PREEMPT is not set\n\
                   CONFIG_PREEMPT_LAZY=y\n# CONFIG_PREEMPT_RT is not set\nCONFIG_PREEMPT_DYNAMIC=y\n";
        assert_eq!(parse_config(sid).as_deref(), Some("lazy"));
        // Debian 6.12 (trixie) and 6.1 (bookworm): voluntary by default, dynamic.
        let trixie = "CONFIG_PREEMPT_BUILD=y\n# CONFIG_PREEMPT_NONE is not set\nCONFIG_PREEMPT_VOLUNTARY=y\n\
                      # CONFIG_PREEMPT is not set\nCONFIG_PREEMPT_DYNAMIC=y\n";
        assert_eq!(parse_config(trixie).as_deref(), Some("voluntary"));
        // Debian 5.10 (bullseye): voluntary, not dynamic.
        let bullseye = "# CONFIG_PREEMPT_NONE is not set\nCONFIG_PREEMPT_VOLUNTARY=y\n# CONFIG_PREEMPT is not set\n";
        assert_eq!(parse_config(bullseye).as_deref(), Some("voluntary"));
        assert_eq!(parse_config("CONFIG_PREEMPT=y\nCONFIG_PREEMPT_RT=y\n").as_deref(), Some("rt"));
        assert_eq!(parse_config("CONFIG_PREEMPT=y\n").as_deref(), Some("full"));
        assert_eq!(parse_config("CONFIG_PREEMPT_COUNT=y\n"), None);
    }

    #[test]
    fn which_models_preempt_a_program() {
        let p = |m: Option<&str>| Preemption { model: m.map(str::to_string), source: String::new() }.preempts();
        assert_eq!(p(Some("lazy")), Some(true));
        assert_eq!(p(Some("full")), Some(true));
        assert_eq!(p(Some("rt")), Some(true));
        assert_eq!(p(Some("voluntary")), Some(false));
        assert_eq!(p(Some("none")), Some(false));
        assert_eq!(p(Some("voluntary or none")), Some(false));
        assert_eq!(p(None), None);
    }
}
