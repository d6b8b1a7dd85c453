//! Rust mirror of `bpf/events.h`: the bytes every probe writes into its ring buffer.
//!
//! Each struct states the offset of every field; the `abi_struct!` macro turns those into
//! compile-time assertions, and `tests/abi_c.rs` compiles the C header and checks the same
//! offsets against it. Every type here is plain old data: any bit pattern is valid, so a
//! record can be read from untrusted bytes with [`Pod::read`].

/// Version of the record layout; `cap_hdr.abi` carries it in every record.
pub const ABI_VERSION: u16 = 4;

/// Record kinds (`CAP_KIND_*`): stable numbers, never renumbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    Exec = 1,
    Exit = 2,
    File = 3,
    Net = 4,
    Dns = 5,
    Module = 6,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Exec, Kind::Exit, Kind::File, Kind::Net, Kind::Dns, Kind::Module];

    pub fn from_u16(kind: u16) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| *k as u16 == kind)
    }

    /// Size of the kind's fixed part; a variable tail may follow.
    pub fn fixed_size(self) -> usize {
        match self {
            Kind::Exec => core::mem::size_of::<Exec>(),
            Kind::Exit => core::mem::size_of::<Exit>(),
            Kind::File => core::mem::size_of::<File>(),
            Kind::Net => core::mem::size_of::<Net>(),
            Kind::Dns => core::mem::size_of::<Dns>(),
            Kind::Module => core::mem::size_of::<Module>(),
        }
    }
}

pub const KIND_EXEC: u16 = Kind::Exec as u16;
pub const KIND_EXIT: u16 = Kind::Exit as u16;
pub const KIND_FILE: u16 = Kind::File as u16;
pub const KIND_NET: u16 = Kind::Net as u16;
pub const KIND_DNS: u16 = Kind::Dns as u16;
pub const KIND_MODULE: u16 = Kind::Module as u16;

pub const PATH_MAX: usize = 4096;
pub const ARGS_MAX_MIN: usize = 32768;
pub const ARGS_MAX_MAX: usize = 131072;
pub const DNS_MSG_MAX: usize = 512;

pub const RINGS_MAX: usize = 8;
pub const PREFIX_MAX: usize = 64;
pub const PREFIXES_MAX: usize = 8;
pub const DNS_PORTS_MAX: usize = 8;
pub const COMMS_MAX: usize = 64;
pub const FDS_MAX: usize = 65536;

pub const FLOOR_OFF: u32 = 0;
pub const FLOOR_HOOK: u32 = 1;
pub const FLOOR_RECORDS: u32 = 2;

pub const EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
pub const EXEC_ENVP_TRUNCATED: u32 = 1 << 1;
pub const EXEC_FROM_PROCFS: u32 = 1 << 2;
pub const EXEC_PATH_TRUNCATED: u32 = 1 << 3;
pub const EXEC_FAILED: u32 = 1 << 4;

pub const FILE_OPEN: u32 = 1;
pub const FILE_CLOSE: u32 = 2;
pub const FILE_UNLINK: u32 = 3;
pub const FILE_RENAME: u32 = 4;
pub const FILE_READ: u32 = 5;
pub const FILE_WRITE: u32 = 6;
pub const FILE_TRUNCATE: u32 = 7;
pub const CLOSE_CLOSE: u16 = 1;
pub const CLOSE_EXIT: u16 = 2;
pub const CLOSE_EXEC: u16 = 3;
pub const CLOSE_END: u16 = 4;
pub const FILE_PREEXISTING: u16 = 1;
pub const FILE_MMAP_WRITE: u16 = 2;
/// A close record written by the open that reused the file's struct before its closer's
/// hook ran: the file's sums under the opener's process (`bpf/events.h`).
pub const FILE_REUSED: u16 = 4;
/// The late closer's record for such a close: its process, descriptor and result, no sums.
pub const FILE_LATE: u16 = 8;

pub const DIR_OUT: u8 = 1;
pub const DIR_IN: u8 = 2;

pub const NET_UPDATE: u32 = 1 << 0;
pub const NET_PREEXISTING: u32 = 1 << 1;

pub const NET_OPEN: u16 = 0;
pub const NET_CLOSED: u16 = 1;
pub const NET_REFUSED: u16 = 2;
pub const NET_TIMEOUT: u16 = 3;
pub const NET_RESET: u16 = 4;
pub const NET_FAILED: u16 = 5;
pub const NET_EVICTED: u16 = 6;

pub const OWNER_NONE: u16 = 0;
pub const OWNER_CONNECT: u16 = 1;
pub const OWNER_ACCEPT: u16 = 2;
pub const OWNER_LISTEN: u16 = 3;
pub const OWNER_SEND: u16 = 4;
pub const OWNER_SOCKET: u16 = 5;
pub const OWNER_PROCFS: u16 = 6;

pub const MODULE_INIT: u32 = 1;
pub const MODULE_FINIT: u32 = 2;
pub const MODULE_DELETE: u32 = 3;
pub const MODULE_LOADED: u32 = 1;
pub const MODULE_FREED: u32 = 2;
pub const MODULE_PARAMS_TRUNCATED: u32 = 4;
pub const MODULE_NAME_MAX: usize = 64;
pub const MODULE_PARAMS_MAX: usize = 4096;

/// `struct cap_config.preempt` (bpf/common.bpf.h): program bodies with preemption off,
/// and the file probe's fexit spares loaded (bpf/spare.bpf.h).
pub const PREEMPT_OFF: u32 = 1;
pub const PREEMPT_SPARES: u32 = 2;

pub const DROP_RINGBUF_FULL: usize = 0;
pub const DROP_READ_FAILED: usize = 1;
pub const DROP_FILTER_MAP: usize = 2;
pub const DROP_CAUSES: usize = 4;

/// Every `#define CAP_*` of `bpf/events.h` with the value Rust gives it. `tests/abi_c.rs`
/// compiles the header and checks both directions: each define is here, with this value.
pub const C_CONSTANTS: &[(&str, i64)] = &[
    ("CAP_ABI_VERSION", ABI_VERSION as i64),
    ("CAP_KIND_EXEC", KIND_EXEC as i64),
    ("CAP_KIND_EXIT", KIND_EXIT as i64),
    ("CAP_KIND_FILE", KIND_FILE as i64),
    ("CAP_KIND_NET", KIND_NET as i64),
    ("CAP_KIND_DNS", KIND_DNS as i64),
    ("CAP_KIND_MODULE", KIND_MODULE as i64),
    ("CAP_PATH_MAX", PATH_MAX as i64),
    ("CAP_ARGS_MAX_MIN", ARGS_MAX_MIN as i64),
    ("CAP_ARGS_MAX_MAX", ARGS_MAX_MAX as i64),
    ("CAP_DNS_MSG_MAX", DNS_MSG_MAX as i64),
    ("CAP_RINGS_MAX", RINGS_MAX as i64),
    ("CAP_PREFIX_MAX", PREFIX_MAX as i64),
    ("CAP_PREFIXES_MAX", PREFIXES_MAX as i64),
    ("CAP_DNS_PORTS_MAX", DNS_PORTS_MAX as i64),
    ("CAP_COMMS_MAX", COMMS_MAX as i64),
    ("CAP_FDS_MAX", FDS_MAX as i64),
    ("CAP_FLOOR_OFF", FLOOR_OFF as i64),
    ("CAP_FLOOR_HOOK", FLOOR_HOOK as i64),
    ("CAP_FLOOR_RECORDS", FLOOR_RECORDS as i64),
    ("CAP_EXEC_ARGV_TRUNCATED", EXEC_ARGV_TRUNCATED as i64),
    ("CAP_EXEC_ENVP_TRUNCATED", EXEC_ENVP_TRUNCATED as i64),
    ("CAP_EXEC_FROM_PROCFS", EXEC_FROM_PROCFS as i64),
    ("CAP_EXEC_PATH_TRUNCATED", EXEC_PATH_TRUNCATED as i64),
    ("CAP_EXEC_FAILED", EXEC_FAILED as i64),
    ("CAP_FILE_OPEN", FILE_OPEN as i64),
    ("CAP_FILE_CLOSE", FILE_CLOSE as i64),
    ("CAP_FILE_UNLINK", FILE_UNLINK as i64),
    ("CAP_FILE_RENAME", FILE_RENAME as i64),
    ("CAP_FILE_READ", FILE_READ as i64),
    ("CAP_FILE_WRITE", FILE_WRITE as i64),
    ("CAP_FILE_TRUNCATE", FILE_TRUNCATE as i64),
    ("CAP_CLOSE_CLOSE", CLOSE_CLOSE as i64),
    ("CAP_CLOSE_EXIT", CLOSE_EXIT as i64),
    ("CAP_CLOSE_EXEC", CLOSE_EXEC as i64),
    ("CAP_CLOSE_END", CLOSE_END as i64),
    ("CAP_FILE_PREEXISTING", FILE_PREEXISTING as i64),
    ("CAP_FILE_MMAP_WRITE", FILE_MMAP_WRITE as i64),
    ("CAP_FILE_REUSED", FILE_REUSED as i64),
    ("CAP_FILE_LATE", FILE_LATE as i64),
    ("CAP_DIR_OUT", DIR_OUT as i64),
    ("CAP_DIR_IN", DIR_IN as i64),
    ("CAP_NET_UPDATE", NET_UPDATE as i64),
    ("CAP_NET_PREEXISTING", NET_PREEXISTING as i64),
    ("CAP_NET_OPEN", NET_OPEN as i64),
    ("CAP_NET_CLOSED", NET_CLOSED as i64),
    ("CAP_NET_REFUSED", NET_REFUSED as i64),
    ("CAP_NET_TIMEOUT", NET_TIMEOUT as i64),
    ("CAP_NET_RESET", NET_RESET as i64),
    ("CAP_NET_FAILED", NET_FAILED as i64),
    ("CAP_NET_EVICTED", NET_EVICTED as i64),
    ("CAP_OWNER_NONE", OWNER_NONE as i64),
    ("CAP_OWNER_CONNECT", OWNER_CONNECT as i64),
    ("CAP_OWNER_ACCEPT", OWNER_ACCEPT as i64),
    ("CAP_OWNER_LISTEN", OWNER_LISTEN as i64),
    ("CAP_OWNER_SEND", OWNER_SEND as i64),
    ("CAP_OWNER_SOCKET", OWNER_SOCKET as i64),
    ("CAP_OWNER_PROCFS", OWNER_PROCFS as i64),
    ("CAP_MODULE_INIT", MODULE_INIT as i64),
    ("CAP_MODULE_FINIT", MODULE_FINIT as i64),
    ("CAP_MODULE_DELETE", MODULE_DELETE as i64),
    ("CAP_MODULE_LOADED", MODULE_LOADED as i64),
    ("CAP_MODULE_FREED", MODULE_FREED as i64),
    ("CAP_MODULE_PARAMS_TRUNCATED", MODULE_PARAMS_TRUNCATED as i64),
    ("CAP_MODULE_NAME_MAX", MODULE_NAME_MAX as i64),
    ("CAP_MODULE_PARAMS_MAX", MODULE_PARAMS_MAX as i64),
    ("CAP_PREEMPT_OFF", PREEMPT_OFF as i64),
    ("CAP_PREEMPT_SPARES", PREEMPT_SPARES as i64),
    ("CAP_DROP_RINGBUF_FULL", DROP_RINGBUF_FULL as i64),
    ("CAP_DROP_READ_FAILED", DROP_READ_FAILED as i64),
    ("CAP_DROP_FILTER_MAP", DROP_FILTER_MAP as i64),
    ("CAP_DROP_CAUSES", DROP_CAUSES as i64),
];

/// One field of a mirrored struct, as the ABI test compares it with the C compiler's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// Plain old data: `#[repr(C)]`, no padding, every bit pattern valid.
///
/// # Safety
/// Implement only for `#[repr(C)]` types made of integers and integer arrays with no
/// implicit padding; `abi_struct!` checks the padding part at compile time.
pub unsafe trait Pod: Copy + 'static {
    /// Reads `Self` from the start of `bytes`, or `None` when there are too few bytes.
    #[inline]
    fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < core::mem::size_of::<Self>() {
            return None;
        }
        // SAFETY: the length was checked above, `read_unaligned` has no alignment
        // requirement, and `Pod` guarantees every bit pattern is a valid `Self`.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// The bytes of `self`, exactly as the kernel side lays them out.
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: `Pod` types have no padding, so all `size_of` bytes are initialised.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast::<u8>(), core::mem::size_of::<Self>()) }
    }
}

/// Declares a `#[repr(C)]` mirror whose every field states its offset, and checks at
/// compile time that the offsets hold and that the fields tile the struct without padding.
macro_rules! abi_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident ($c_name:literal, size $size:literal) {
            $( $(#[$fmeta:meta])* [$off:literal] $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        const _: () = {
            assert!(core::mem::size_of::<$name>() == $size);
            $( assert!(core::mem::offset_of!($name, $field) == $off); )*
            // No implicit padding: the field sizes add up to the struct size.
            assert!(0 $( + core::mem::size_of::<$ty>() )* == $size);
        };

        // SAFETY: repr(C), integer fields only, no padding (asserted just above).
        unsafe impl Pod for $name {}

        impl $name {
            /// The struct's name in `bpf/events.h`.
            pub const C_NAME: &'static str = $c_name;
            /// Every field with its offset and size, for the ABI tests.
            pub const FIELDS: &'static [FieldLayout] = &[
                $( FieldLayout {
                    name: stringify!($field),
                    offset: $off,
                    size: core::mem::size_of::<$ty>(),
                }, )*
            ];
        }
    };
}

abi_struct! {
    /// `struct cap_hdr`: the common header of every record.
    pub struct Hdr ("cap_hdr", size 80) {
        [0] kind: u16,
        [2] abi: u16,
        /// Total record length, this header included.
        [4] len: u32,
        [8] ktime_ns: u64,
        [16] start_ns: u64,
        [24] parent_start_ns: u64,
        [32] cgroup_id: u64,
        [40] pid: u32,
        [44] tid: u32,
        [48] ppid: u32,
        [52] uid: u32,
        [56] gid: u32,
        [60] _pad0: u32,
        [64] comm: [u8; 16],
    }
}

abi_struct! {
    /// `struct cap_exec`; tail: path, argv, envp.
    pub struct Exec ("cap_exec", size 168) {
        [0] hdr: Hdr,
        [80] euid: u32,
        [84] loginuid: u32,
        [88] flags: u32,
        [92] argc: u32,
        [96] envc: u32,
        [100] path_len: u32,
        [104] argv_len: u32,
        [108] envp_len: u32,
        [112] pidns: u32,
        [116] mntns: u32,
        [120] netns: u32,
        [124] ret: i32,
        [128] tty: [u8; 32],
        [160] exe_len: u32,
        [164] _pad0: u32,
    }
}

abi_struct! {
    /// `struct cap_exit`.
    pub struct Exit ("cap_exit", size 88) {
        [0] hdr: Hdr,
        [80] exit_status: u32,
        [84] _pad0: u32,
    }
}

abi_struct! {
    /// `struct cap_file`; tail: path, path2, cwd.
    pub struct File ("cap_file", size 176) {
        [0] hdr: Hdr,
        [80] op: u32,
        [84] fd: i32,
        [88] ret: i64,
        [96] flags: u32,
        [100] mode: u32,
        [104] bytes_read: u64,
        [112] bytes_written: u64,
        [120] reads: u32,
        [124] writes: u32,
        [128] ino: u64,
        [136] dev: u32,
        [140] path_len: u32,
        [144] path2_len: u32,
        [148] cwd_len: u32,
        [152] file_key: u64,
        [160] length: u64,
        [168] how: u16,
        [170] fflags: u16,
        [172] gen: u32,
    }
}

abi_struct! {
    /// `struct cap_config`: what the loader writes into every object's `.rodata.cap_cfg`.
    pub struct Config ("cap_config", size 64) {
        [0] self_tgid: u32,
        [4] filter_pid: u32,
        [8] filter_comm_on: u32,
        [12] nr_rings: u32,
        [16] wakeup_bytes_cpu: u64,
        [24] args_max: u32,
        [28] file_rw_events: u32,
        [32] file_floor: u32,
        [36] nr_prefixes: u32,
        [40] dns_ports: [u16; DNS_PORTS_MAX],
        [56] preempt: u32,
        [60] _pad0: u32,
    }
}

abi_struct! {
    /// `struct cap_endpoint`: a socket's flow, shared by net and dns records.
    pub struct Endpoint ("cap_endpoint", size 48) {
        [0] family: u16,
        [2] proto: u8,
        [3] direction: u8,
        [4] sport: u16,
        [6] dport: u16,
        [8] saddr: [u8; 16],
        [24] daddr: [u8; 16],
        [40] netns: u32,
        [44] _pad0: u32,
    }
}

abi_struct! {
    /// `struct cap_net`.
    pub struct Net ("cap_net", size 200) {
        [0] hdr: Hdr,
        [80] ep: Endpoint,
        [128] flags: u32,
        [132] outcome: u16,
        [134] owner: u16,
        [136] bytes_sent: u64,
        [144] bytes_recv: u64,
        [152] segs_sent: u64,
        [160] segs_recv: u64,
        [168] retrans: u32,
        [172] srtt_us: u32,
        [176] start_ns: u64,
        [184] last_ns: u64,
        [192] sock_cookie: u64,
    }
}

abi_struct! {
    /// `struct cap_dns`; tail: the DNS message.
    pub struct Dns ("cap_dns", size 144) {
        [0] hdr: Hdr,
        [80] ep: Endpoint,
        [128] latency_ns: u64,
        [136] msg_len: u32,
        [140] wire_len: u32,
    }
}

abi_struct! {
    /// `struct cap_module`; tail: name, path, params.
    pub struct Module ("cap_module", size 128) {
        [0] hdr: Hdr,
        [80] syscall: u32,
        [84] flags: u32,
        [88] ret: i64,
        [96] image_len: u64,
        [104] taints: u64,
        [112] status: u32,
        [116] name_len: u32,
        [120] path_len: u32,
        [124] params_len: u32,
    }
}

abi_struct! {
    /// `struct cap_drops`: value of each probe's per-CPU drop counter array.
    pub struct Drops ("cap_drops", size 48) {
        [0] submitted: u64,
        [8] dropped: [u64; DROP_CAUSES],
        [40] unsignalled: u64,
    }
}

/// Every mirrored struct, for tests that walk the whole ABI.
pub const ALL_STRUCTS: &[(&str, usize, &[FieldLayout])] = &[
    (Hdr::C_NAME, core::mem::size_of::<Hdr>(), Hdr::FIELDS),
    (Config::C_NAME, core::mem::size_of::<Config>(), Config::FIELDS),
    (Endpoint::C_NAME, core::mem::size_of::<Endpoint>(), Endpoint::FIELDS),
    (Exec::C_NAME, core::mem::size_of::<Exec>(), Exec::FIELDS),
    (Exit::C_NAME, core::mem::size_of::<Exit>(), Exit::FIELDS),
    (File::C_NAME, core::mem::size_of::<File>(), File::FIELDS),
    (Net::C_NAME, core::mem::size_of::<Net>(), Net::FIELDS),
    (Dns::C_NAME, core::mem::size_of::<Dns>(), Dns::FIELDS),
    (Module::C_NAME, core::mem::size_of::<Module>(), Module::FIELDS),
    (Drops::C_NAME, core::mem::size_of::<Drops>(), Drops::FIELDS),
];

/// Clock ticks per second of `/proc/<pid>/stat` start times (USER_HZ, 100 on Linux).
pub const USER_HZ: u64 = 100;

/// The process key: stable across PID reuse within a boot and distinct across boots.
///
/// Start times are taken at USER_HZ resolution so that a process first seen in `/proc`
/// (which reports start time in ticks) gets the same key as its BPF records. The mix is
/// splitmix64's finaliser; the top bit is cleared so the key is a non-negative `i64`.
#[inline]
pub fn exec_id(boot_seed: u64, pid: u32, start_ns: u64) -> i64 {
    let ticks = start_ns / (1_000_000_000 / USER_HZ);
    let mut x = boot_seed ^ (u64::from(pid) << 40) ^ ticks.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x & (i64::MAX as u64)) as i64
}

/// Seed for [`exec_id`] from the boot id (`/proc/sys/kernel/random/boot_id`): FNV-1a.
pub fn boot_seed(boot_id: &str) -> u64 {
    boot_id.trim().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
