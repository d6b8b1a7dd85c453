/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The event ABI: the bytes every probe puts in its BPF ring buffer.
 *
 * Every record starts with struct cap_hdr, followed by the fixed part of its kind and,
 * for some kinds, a variable-length tail whose pieces' lengths sit in the fixed part.
 * The Rust mirror lives in schemas/src/abi.rs; a test compiles this header and checks
 * every size and offset against it, so the two sides cannot drift apart silently.
 *
 * Rules: no implicit padding (every struct is laid out to 8-byte multiples with explicit
 * fields), no bool (use flag bits in a __u32), kinds are stable numbers that are never
 * renumbered; a retired kind leaves a hole. Bump CAP_ABI_VERSION on any layout change.
 */
#ifndef CAPTURE_EVENTS_H
#define CAPTURE_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CAP_ABI_VERSION 4

/* Record kinds (enum Kind in schemas/src/abi.rs). */
#define CAP_KIND_EXEC   1
#define CAP_KIND_EXIT   2
#define CAP_KIND_FILE   3
#define CAP_KIND_NET    4
#define CAP_KIND_DNS    5
#define CAP_KIND_MODULE 6

/* Limits of the variable tails. */
#define CAP_PATH_MAX       4096
#define CAP_ARGS_MAX_MIN   32768    /* default --argv-max-bytes, for argv and envp each */
#define CAP_ARGS_MAX_MAX   131072   /* largest --argv-max-bytes */
#define CAP_DNS_MSG_MAX    512

/* Sizes of what the loader fills and the maps the probes keep. */
#define CAP_RINGS_MAX      8        /* ring buffers per probe (ring0..ring7) */
#define CAP_PREFIX_MAX     64       /* bytes of one --exclude-path-prefix */
#define CAP_PREFIXES_MAX   8        /* how many --exclude-path-prefix */
#define CAP_DNS_PORTS_MAX  8        /* how many DNS ports (53 and --dns-port) */
#define CAP_COMMS_MAX      64       /* entries of comm_filter (--comm) */
#define CAP_FDS_MAX        65536    /* entries of the file probe's open-file table */

/* What the loader tells every probe before it loads: one struct in each object's
 * .rodata.cap_cfg section (read-only once loaded, so the verifier prunes what it switches
 * off). Fields a probe does not use are ignored by it. */
struct cap_config {
	__u32 self_tgid;        /* the recorder: never recorded */
	__u32 filter_pid;       /* 0: every process */
	__u32 filter_comm_on;   /* only the names in comm_filter */
	__u32 nr_rings;         /* ring buffers in use: a power of two, at most CAP_RINGS_MAX */
	__u64 wakeup_bytes_cpu; /* see submit() in common.bpf.h */
	__u32 args_max;         /* exec: bytes of argv, and of envp (--argv-max-bytes) */
	__u32 file_rw_events;   /* file: one record per read/write call as well */
	__u32 file_floor;       /* file: benchmarks only, CAP_FLOOR_* */
	__u32 nr_prefixes;      /* file: entries of exclude_prefixes in use */
	__u16 dns_ports[CAP_DNS_PORTS_MAX]; /* dns: ports that carry DNS; 0 ends the list */
	__u32 preempt;          /* CAP_PREEMPT_*: where the kernel preempts tasks inside programs */
	__u32 _pad0;
};

/* struct cap_config.preempt (common.bpf.h, spare.bpf.h) */
#define CAP_PREEMPT_OFF    1 /* program bodies run with preemption off (bpf_preempt_disable) */
#define CAP_PREEMPT_SPARES 2 /* the spares for preempted tasks are loaded (spare.bpf.h, net_state_nested2) */

/* struct cap_config.file_floor (CAPTURE_BENCH_FILE_FLOOR) */
#define CAP_FLOOR_OFF     0 /* the probe as it is */
#define CAP_FLOOR_HOOK    1 /* the program returns at once: the cost of the hook */
#define CAP_FLOOR_RECORDS 2 /* one record per open and close: time, process, fd */

/* Common header of every record: 80 bytes. */
struct cap_hdr {
	__u16 kind;            /* CAP_KIND_* */
	__u16 abi;             /* CAP_ABI_VERSION of the producer */
	__u32 len;             /* total record length in bytes, this header included */
	__u64 ktime_ns;        /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME of the event */
	__u64 start_ns;        /* start_boottime of the thread-group leader (process key input) */
	__u64 parent_start_ns; /* exec records: start_boottime of the real parent's leader; else 0 */
	__u64 cgroup_id;       /* bpf_get_current_cgroup_id() (cgroup v2) */
	__u32 pid;             /* thread-group id */
	__u32 tid;             /* thread id */
	__u32 ppid;            /* real parent's thread-group id */
	__u32 uid;
	__u32 gid;
	__u32 _pad0;
	char  comm[16];
};

/* struct cap_exec.flags */
#define CAP_EXEC_ARGV_TRUNCATED (1u << 0)
#define CAP_EXEC_ENVP_TRUNCATED (1u << 1)
#define CAP_EXEC_FROM_PROCFS    (1u << 2) /* written by the recorder at start from /proc */
#define CAP_EXEC_PATH_TRUNCATED (1u << 3)
#define CAP_EXEC_FAILED         (1u << 4) /* execve/execveat failed: ret holds -errno */

/* CAP_KIND_EXEC: 168 bytes, then the tail: path, argv, envp, exe (the file that ran).
 * argv and envp are NUL-separated strings exactly as in the new mm; when cut at the
 * size limit, the last string may lack its NUL and the TRUNCATED flag is set. */
struct cap_exec {
	struct cap_hdr hdr;
	__u32 euid;
	__u32 loginuid;        /* audit login uid; 0xffffffff when unset */
	__u32 flags;           /* CAP_EXEC_* */
	__u32 argc;            /* argument count as the kernel saw it (even when truncated) */
	__u32 envc;
	__u32 path_len;        /* bytes of the executed path in the tail, no NUL */
	__u32 argv_len;        /* bytes of argv in the tail */
	__u32 envp_len;        /* bytes of envp in the tail */
	__u32 pidns;           /* namespace inode numbers */
	__u32 mntns;
	__u32 netns;
	__s32 ret;             /* 0, or -errno of a failed exec (CAP_EXEC_FAILED) */
	char  tty[32];         /* controlling tty name ("pts/3"), empty when none */
	__u32 exe_len;         /* bytes of the executable's resolved path, after envp */
	__u32 _pad0;
};

/* CAP_KIND_EXIT: 88 bytes; emitted for thread-group leaders only. */
struct cap_exit {
	struct cap_hdr hdr;
	__u32 exit_status;     /* task->exit_code: (code << 8) | (core dumped << 7) | signal */
	__u32 _pad0;
};

/* struct cap_file.op */
#define CAP_FILE_OPEN     1 /* an open, or a file already open at start (CAP_FILE_PREEXISTING) */
#define CAP_FILE_CLOSE    2 /* the open file's last descriptor gone: its sums (see .how) */
#define CAP_FILE_UNLINK   3
#define CAP_FILE_RENAME   4
#define CAP_FILE_READ     5 /* one call, with --file-rw-events */
#define CAP_FILE_WRITE    6 /* one call, with --file-rw-events */
#define CAP_FILE_TRUNCATE 7 /* truncate(2) by path, ftruncate(2) by descriptor */

/* struct cap_file.how: what ended the open file's last descriptor (close records) */
#define CAP_CLOSE_CLOSE 1 /* close(2), close_range(2), or dup2/dup3 over it */
#define CAP_CLOSE_EXIT  2 /* the process exited holding it */
#define CAP_CLOSE_EXEC  3 /* closed on exec (O_CLOEXEC) */
#define CAP_CLOSE_END   4 /* still open when the capture ended: the sums so far */

/* struct cap_file.fflags */
#define CAP_FILE_PREEXISTING 1 /* open before the recorder started (found at start) */
#define CAP_FILE_MMAP_WRITE  2 /* mapped shared and writable: writes through the mapping are not counted */
/* Close records only, read by the recorder and never stored. close(2) frees the file
 * before its hook runs, so an open on another CPU can get the same struct first: that
 * open writes the old file's close record (CAP_FILE_REUSED: its sums, but the opener's
 * process), and the closer's hook, coming late, writes one of its own (CAP_FILE_LATE:
 * its process, descriptor and result, no sums). The recorder joins the two by file_key
 * and gen into one row. */
#define CAP_FILE_REUSED      4
#define CAP_FILE_LATE        8

/* CAP_KIND_FILE: 176 bytes, then the tail: path, path2, cwd. */
struct cap_file {
	struct cap_hdr hdr;
	__u32 op;              /* CAP_FILE_* */
	__s32 fd;              /* the file descriptor concerned, -1 when none */
	__s64 ret;             /* syscall result: fd, byte count, 0, or -errno */
	__u32 flags;           /* open flags, unlinkat flags or renameat2 flags */
	__u32 mode;            /* open mode */
	__u64 bytes_read;
	__u64 bytes_written;
	__u32 reads;           /* read calls summed into bytes_read */
	__u32 writes;          /* write calls summed into bytes_written */
	__u64 ino;
	__u32 dev;
	__u32 path_len;        /* the path as the process gave it (rename: the old path) */
	__u32 path2_len;       /* rename: the new path */
	__u32 cwd_len;         /* working directory, to resolve a relative path; 0 when absolute */
	__u64 file_key;        /* the open file (its struct file): joins an open to its close */
	__u64 length;          /* truncate: the length asked for */
	__u16 how;             /* close: CAP_CLOSE_* */
	__u16 fflags;          /* CAP_FILE_PREEXISTING | CAP_FILE_MMAP_WRITE (| CAP_FILE_REUSED, CAP_FILE_LATE) */
	__u32 gen;             /* close: the generation of the file's open (CAP_FILE_REUSED, CAP_FILE_LATE) */
};

/* struct cap_endpoint.direction */
#define CAP_DIR_OUT 1 /* connect / send */
#define CAP_DIR_IN  2 /* accept / receive */

/* A socket's flow, shared by net and dns records: 48 bytes. Ports in host order, IPv4
 * addresses in the first 4 bytes of the 16-byte arrays. */
struct cap_endpoint {
	__u16 family;          /* AF_INET or AF_INET6 */
	__u8  proto;           /* IPPROTO_TCP or IPPROTO_UDP */
	__u8  direction;       /* CAP_DIR_* */
	__u16 sport;           /* local */
	__u16 dport;           /* remote */
	__u8  saddr[16];
	__u8  daddr[16];
	__u32 netns;           /* network namespace inode number */
	__u32 _pad0;
};

/* struct cap_net.flags */
#define CAP_NET_UPDATE      (1u << 0) /* still open: counters so far */
#define CAP_NET_PREEXISTING (1u << 1) /* open before the recorder started */

/* struct cap_net.outcome */
#define CAP_NET_OPEN    0 /* update and preexisting rows */
#define CAP_NET_CLOSED  1 /* established, then closed */
#define CAP_NET_REFUSED 2
#define CAP_NET_TIMEOUT 3
#define CAP_NET_RESET   4
#define CAP_NET_FAILED  5 /* another error before it was established */
#define CAP_NET_EVICTED 6 /* UDP: the peer's slot was taken by another peer (see net_flow) */

/* struct cap_net.owner: how the header's process was found */
#define CAP_OWNER_NONE    0
#define CAP_OWNER_CONNECT 1 /* connect(2), in the connecting task */
#define CAP_OWNER_ACCEPT  2 /* first send or receive on an accepted socket */
#define CAP_OWNER_LISTEN  3 /* the task that put the listening socket in LISTEN */
#define CAP_OWNER_SEND    4 /* UDP: the first task to send or receive on the socket */
#define CAP_OWNER_SOCKET  5 /* UDP: the task that created the socket (none sent or received yet) */
#define CAP_OWNER_PROCFS  6 /* preexisting: a task holding it at start (iter/task_file) */

/* CAP_KIND_NET: 200 bytes. The header describes the socket's owner (see owner), and its
 * ktime_ns is the time of the row. */
struct cap_net {
	struct cap_hdr hdr;
	struct cap_endpoint ep;
	__u32 flags;           /* CAP_NET_* flags */
	__u16 outcome;         /* CAP_NET_* outcome */
	__u16 owner;           /* CAP_OWNER_* */
	__u64 bytes_sent;
	__u64 bytes_recv;
	__u64 segs_sent;       /* TCP segments or UDP datagrams */
	__u64 segs_recv;
	__u32 retrans;         /* TCP: total retransmitted segments */
	__u32 srtt_us;         /* TCP: smoothed RTT, microseconds */
	__u64 start_ns;        /* CLOCK_BOOTTIME when the flow began */
	__u64 last_ns;         /* UDP: the last datagram; TCP: 0 */
	__u64 sock_cookie;     /* the kernel's socket cookie: one socket's rows share it */
};

/* CAP_KIND_DNS: 144 bytes, then the tail: the DNS message as on the wire (for TCP,
 * without the 2-byte length prefix), cut at CAP_DNS_MSG_MAX. */
struct cap_dns {
	struct cap_hdr hdr;
	struct cap_endpoint ep;
	__u64 latency_ns;      /* response: time since the matching query; 0 when unmatched */
	__u32 msg_len;         /* bytes of the message in the tail */
	__u32 wire_len;        /* length of the message on the wire */
};

/* struct cap_module.syscall: the call the record is about */
#define CAP_MODULE_INIT   1 /* init_module(2): image from memory */
#define CAP_MODULE_FINIT  2 /* finit_module(2): image from a file */
#define CAP_MODULE_DELETE 3 /* delete_module(2) */

/* struct cap_module.status bits */
#define CAP_MODULE_LOADED 1 /* module:module_load fired during the call (linked in) */
#define CAP_MODULE_FREED  2 /* module:module_free fired during the call (unloaded) */
#define CAP_MODULE_PARAMS_TRUNCATED 4 /* params cut at CAP_MODULE_PARAMS_MAX - 1 bytes */

#define CAP_MODULE_NAME_MAX   64   /* the kernel's MODULE_NAME_LEN is 56 on 64-bit */
#define CAP_MODULE_PARAMS_MAX 4096

/* CAP_KIND_MODULE: 128 bytes, then the tail: name, path, params. One record per
 * init_module, finit_module or delete_module call, at its exit, failed ones too, with
 * what the module tracepoints saw during it. */
struct cap_module {
	struct cap_hdr hdr;
	__u32 syscall;         /* CAP_MODULE_INIT, _FINIT or _DELETE */
	__u32 flags;           /* finit_module or delete_module flags */
	__s64 ret;             /* the call's result: 0 or -errno */
	__u64 image_len;       /* init_module: bytes of the image; 0 otherwise */
	__u64 taints;          /* the module's taint bits (TAINT_*), when a tracepoint fired */
	__u32 status;          /* CAP_MODULE_LOADED | _FREED | _PARAMS_TRUNCATED */
	__u32 name_len;        /* the kernel's name; else delete_module's argument */
	__u32 path_len;        /* finit_module: path of the module file */
	__u32 params_len;      /* loads: the parameters */
};

/* Drop causes: indexes into struct cap_drops.dropped. */
#define CAP_DROP_RINGBUF_FULL 0 /* bpf_ringbuf_reserve failed */
#define CAP_DROP_READ_FAILED  1 /* a kernel read needed for the record failed */
#define CAP_DROP_FILTER_MAP   2 /* per-process state map full (e.g. open-file table) */
#define CAP_DROP_CAUSES       4

/* Value of each probe's per-CPU `drops` array (one slot, key 0): 48 bytes. The recorder
 * sums the CPUs and reports the counts in the stats table. `unsignalled` is the kernel
 * side's own: bytes this CPU wrote since it last woke the reader. */
struct cap_drops {
	__u64 submitted;
	__u64 dropped[CAP_DROP_CAUSES];
	__u64 unsignalled;
};

#endif /* CAPTURE_EVENTS_H */
