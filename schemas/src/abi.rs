//! Rust mirror of `bpf/events.h`: the bytes every probe writes into its ring buffer.
//!
//! Each struct states the offset of every field; the `abi_struct!` macro turns those into
//! compile-time assertions, and `tests/abi_c.rs` compiles the C header and checks the same
//! offsets against it. Every type here is plain old data: any bit pattern is valid, so a
//! record can be read from untrusted bytes with [`Pod::read`].

/// Version of the record layout; `cap_hdr.abi` carries it in every record.
pub const ABI_VERSION: u16 = 1;

pub const KIND_EXEC: u16 = 1;
pub const KIND_EXIT: u16 = 2;
pub const KIND_FILE: u16 = 3;
pub const KIND_NET: u16 = 4;
pub const KIND_DNS: u16 = 5;
pub const KIND_MODULE: u16 = 6;

pub const PATH_MAX: usize = 4096;
pub const ARGS_MAX_MIN: usize = 32768;
pub const ARGS_MAX_MAX: usize = 131072;
pub const DNS_MSG_MAX: usize = 512;

pub const EXEC_ARGV_TRUNCATED: u32 = 1 << 0;
pub const EXEC_ENVP_TRUNCATED: u32 = 1 << 1;
pub const EXEC_FROM_PROCFS: u32 = 1 << 2;
pub const EXEC_PATH_TRUNCATED: u32 = 1 << 3;

pub const FILE_OPEN: u32 = 1;
pub const FILE_CLOSE: u32 = 2;
pub const FILE_UNLINK: u32 = 3;
pub const FILE_RENAME: u32 = 4;
pub const FILE_READ: u32 = 5;
pub const FILE_WRITE: u32 = 6;

pub const DIR_OUT: u8 = 1;
pub const DIR_IN: u8 = 2;

pub const MODULE_INIT: u32 = 1;
pub const MODULE_FINIT: u32 = 2;

pub const DROP_RINGBUF_FULL: usize = 0;
pub const DROP_READ_FAILED: usize = 1;
pub const DROP_FILTER_MAP: usize = 2;
pub const DROP_CAUSES: usize = 4;

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
    pub struct Exec ("cap_exec", size 160) {
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
        [124] _pad0: u32,
        [128] tty: [u8; 32],
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
    pub struct File ("cap_file", size 152) {
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
    }
}

abi_struct! {
    /// `struct cap_net`.
    pub struct Net ("cap_net", size 144) {
        [0] hdr: Hdr,
        [80] family: u16,
        [82] proto: u8,
        [83] direction: u8,
        [84] sport: u16,
        [86] dport: u16,
        [88] saddr: [u8; 16],
        [104] daddr: [u8; 16],
        [120] bytes_sent: u64,
        [128] bytes_recv: u64,
        [136] start_ns: u64,
    }
}

abi_struct! {
    /// `struct cap_dns`; tail: the DNS message.
    pub struct Dns ("cap_dns", size 136) {
        [0] hdr: Hdr,
        [80] family: u16,
        [82] proto: u8,
        [83] direction: u8,
        [84] sport: u16,
        [86] dport: u16,
        [88] saddr: [u8; 16],
        [104] daddr: [u8; 16],
        [120] latency_ns: u64,
        [128] msg_len: u32,
        [132] wire_len: u32,
    }
}

abi_struct! {
    /// `struct cap_module`; tail: name, path, params.
    pub struct Module ("cap_module", size 104) {
        [0] hdr: Hdr,
        [80] source: u32,
        [84] flags: u32,
        [88] name_len: u32,
        [92] path_len: u32,
        [96] params_len: u32,
        [100] _pad0: u32,
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
    (Exec::C_NAME, core::mem::size_of::<Exec>(), Exec::FIELDS),
    (Exit::C_NAME, core::mem::size_of::<Exit>(), Exit::FIELDS),
    (File::C_NAME, core::mem::size_of::<File>(), File::FIELDS),
    (Net::C_NAME, core::mem::size_of::<Net>(), Net::FIELDS),
    (Dns::C_NAME, core::mem::size_of::<Dns>(), Dns::FIELDS),
    (Module::C_NAME, core::mem::size_of::<Module>(), Module::FIELDS),
    (Drops::C_NAME, core::mem::size_of::<Drops>(), Drops::FIELDS),
];

/// Size of a kind's fixed part, or `None` for an unknown kind.
pub fn fixed_size(kind: u16) -> Option<usize> {
    Some(match kind {
        KIND_EXEC => core::mem::size_of::<Exec>(),
        KIND_EXIT => core::mem::size_of::<Exit>(),
        KIND_FILE => core::mem::size_of::<File>(),
        KIND_NET => core::mem::size_of::<Net>(),
        KIND_DNS => core::mem::size_of::<Dns>(),
        KIND_MODULE => core::mem::size_of::<Module>(),
        _ => return None,
    })
}

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
