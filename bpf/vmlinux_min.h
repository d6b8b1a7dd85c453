/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The few kernel types the probes read, declared by hand for CO-RE.
 *
 * Every struct carries preserve_access_index, so each field access is relocated by
 * libbpf against the running kernel's BTF at load time: only the names and types used
 * here must exist there, not these layouts or offsets. Fields that older kernels may lack
 * are read behind bpf_core_field_exists(). Why not a generated vmlinux.h: no bpftool at
 * build time, no 3 MB header per architecture in the tree, and the same header compiles
 * for x86_64 and arm64 (only struct pt_regs differs, below).
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef int pid_t;
typedef unsigned int uid_t;
typedef unsigned int gid_t;
typedef _Bool bool;
enum { false = 0, true = 1 };

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};

enum {
	BPF_F_NO_PREALLOC = 1,
	BPF_F_CLONE = 1 << 9,
};

enum {
	BPF_SK_STORAGE_GET_F_CREATE = 1,
	BPF_LOCAL_STORAGE_GET_F_CREATE = 1,
};

/* Only for bpf_core_enum_value_exists(): which helpers this kernel has. */
enum bpf_func_id {
	BPF_FUNC_get_current_task_btf = 158,
	BPF_FUNC_sock_from_file = 162,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
	BPF_RB_RING_SIZE = 1,
	BPF_RB_CONS_POS = 2,
	BPF_RB_PROD_POS = 3,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct { uid_t val; } kuid_t;
typedef struct { gid_t val; } kgid_t;

struct qstr {
	union {
		struct {
			u32 hash;
			u32 len;
		};
		u64 hash_len;
	};
	const unsigned char *name;
};

struct super_block {
	u32 s_dev;
};

struct inode {
	unsigned short i_mode;
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct inode *d_inode;
};

struct vfsmount {
	struct dentry *mnt_root;
};

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	struct path f_path;
	struct inode *f_inode;
	unsigned int f_flags;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct fs_struct {
	struct path root;
	struct path pwd;
};

struct ns_common {
	unsigned int inum;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct pid_namespace {
	struct ns_common ns;
};

struct net {
	struct ns_common ns;
};

struct kernfs_node {
	u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct nsproxy {
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
	struct net *net_ns;
};

struct tty_struct {
	char name[64];
};

typedef struct {
	int counter;
} atomic_t;

struct signal_struct {
	struct tty_struct *tty;
	atomic_t live; /* threads not yet exiting: 0 once the last has begun to */
};

struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
};

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	unsigned long env_start;
	unsigned long env_end;
};

struct thread_info {
	u32 status; /* x86: TS_COMPAT while a 32-bit syscall runs */
};

struct task_struct {
	pid_t pid;
	pid_t tgid;
	int exit_code;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	u64 start_boottime;
	const struct cred *cred;
	char comm[16];
	struct fs_struct *fs;
	struct files_struct *files;
	struct nsproxy *nsproxy;
	struct signal_struct *signal;
	struct mm_struct *mm;
	kuid_t loginuid;
	struct thread_info thread_info;
	struct css_set *cgroups;
};

/* Sockets. The kernel nests some of these fields in anonymous unions and structs; CO-RE
 * finds them by name through those. */
typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	unsigned long skc_flags; /* sk_flags */
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct socket;

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
	int sk_err;
	struct socket *sk_socket;
};

enum sock_flags {
	SOCK_DEAD,
	SOCK_DONE, /* the peer's FIN arrived */
};

struct inet_sock {
	__be16 inet_sport; /* kept after close, where skc_num is cleared */
};

struct socket {
	struct sock *sk;
	struct file *file;
};

struct request_sock;

struct tcp_sock {
	struct request_sock *fastopen_rsk; /* set while a Fast Open child is in SYN_RECV */
	u64 bytes_received; /* sequence space received: payload, and 1 for the peer's FIN */
	u32 segs_in;
	u32 segs_out;
	u64 bytes_sent;     /* payload transmitted, retransmissions included */
	u64 bytes_retrans;  /* payload retransmitted */
	u32 srtt_us;
	u32 total_retrans;
};

/* Contexts of the BPF iterators (their layout is checked against the kernel's). */
struct bpf_iter_meta {
	void *seq;
	u64 session_id;
	u64 seq_num;
};

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	uid_t uid;
};

struct udp_sock;

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
	uid_t uid;
	int bucket;
};

struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	u32 fd;
	struct file *file;
};

struct linux_binprm {
	struct file *file; /* at sched_process_exec: the file that runs (a script's interpreter) */
	struct mm_struct *mm;
	int argc;
	int envc;
	const char *filename;
};

/* Kernel modules (module:module_load and module:module_free pass one). */
struct module {
	char name[56]; /* MODULE_NAME_LEN on 64-bit */
	unsigned long taints;
};

/* The registers saved at syscall entry, which the syscall tracepoints pass on. */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long r10;
	unsigned long r8;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax; /* the syscall number */
};
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	u64 regs[31];  /* x0 holds the return value by sys_exit; orig_x0 keeps the argument */
	u64 orig_x0;
	s32 syscallno;
};
#else
#error "bpf/vmlinux_min.h: only x86 and arm64 are described (-D__TARGET_ARCH_x86 or _arm64)"
#endif

#pragma clang attribute pop

/* openat2(2)'s argument, read from user memory: a fixed ABI, no relocation. */
struct open_how {
	u64 flags;
	u64 mode;
	u64 resolve;
};

#endif /* __VMLINUX_H__ */
