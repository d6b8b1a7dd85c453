// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * file_ops: open, close, unlink and rename, with reads and writes summed per open file.
 *
 * Hook: the BTF raw tracepoint tp_btf/sys_exit, which sees every syscall with its saved
 * registers: the arguments are still there and the result is known, so nothing is
 * stashed between enter and exit, and no program runs at sys_enter (an attached program
 * costs every syscall on the system, recorded or not).
 * Why not the per-syscall tracepoints (syscalls/sys_enter_openat, ...): they run each
 * program through the perf layer; six of them with empty programs measured 1.3x to 1.7x
 * on an open/write/close loop here, which left no room for the probe's own work.
 * Syscall numbers differ per architecture (below); 32-bit (compat) syscalls on x86_64
 * are not recorded, as with the syscall tracepoints.
 *
 * Only files this probe saw opened are tracked (by process and fd): reads and writes on
 * them add to the file's counts, and close emits one record with the sums. Reads and
 * writes on other descriptors (stdin, sockets, pipes) cost one hash lookup.
 *
 * Paths: the path as the process gave it, and for a relative path the directory it is
 * relative to (the working directory, or the directory of dirfd), resolved by walking
 * dentries up to the root (path.bpf.h, which says the walk's limits). Close records carry
 * no path: the file is gone by sys_exit, and the recorder names it by the path of its
 * open record.
 * Files still open when a process exits, fds duplicated with dup(2) and fds inherited
 * across fork(2) give no close record.
 */
#include "common.bpf.h"
#include "path.bpf.h"
#include "syscall.bpf.h"

/* Set by the loader in cap_cfg: file_rw_events (one row per read(2)/write(2) call as well,
 * --file-rw-events), nr_prefixes (entries of exclude_prefixes in use), and file_floor,
 * for benchmarks only (CAPTURE_BENCH_FILE_FLOOR), to measure what no file probe on this
 * hook can avoid: CAP_FLOOR_HOOK returns at once (the cost of the hook itself);
 * CAP_FLOOR_RECORDS emits one record per open and per close with the time, the process
 * and the fd, through the same ring buffers, and nothing else (no path, no per-file
 * state, no other header field). CAP_FLOOR_OFF always outside benchmarks: the verifier
 * then removes that code. */

#define AT_FDCWD -100
#define PREFIX_MAX CAP_PREFIX_MAX
#define PREFIXES_MAX CAP_PREFIXES_MAX

/* Syscall numbers (asm/unistd.h). */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_open 2
#define NR_close 3
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_rename 82
#define NR_unlink 87
#define NR_openat 257
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_renameat2 316
#define NR_openat2 437
#elif defined(__TARGET_ARCH_arm64)
#define NR_read 63
#define NR_write 64
#define NR_open -2 /* no such call: distinct numbers no syscall has */
#define NR_close 57
#define NR_pread64 67
#define NR_pwrite64 68
#define NR_readv 65
#define NR_writev 66
#define NR_rename -3
#define NR_unlink -4
#define NR_openat 56
#define NR_unlinkat 35
#define NR_renameat 38
#define NR_renameat2 276
#define NR_openat2 437
#endif

/* Path prefixes not to record (--exclude-path-prefix), filled by the loader. */
struct prefix {
	__u32 len;
	char s[PREFIX_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PREFIXES_MAX);
	__type(key, __u32);
	__type(value, struct prefix);
} exclude_prefixes SEC(".maps");

/* Sums of an open file, by (tgid << 32 | fd). LRU: files of processes that exit without
 * closing them age out. A close marks its entry closed instead of deleting it, and the
 * next open of that fd number (the lowest free one, so usually soon) reuses it in place:
 * a lookup instead of an insert and a delete (about 0.15 us less per open/write/close,
 * measured with kernel.bpf_stats_enabled). */
struct fd_state {
	__u64 bytes_read;
	__u64 bytes_written;
	__u32 reads;
	__u32 writes;
	__u64 ino;
	__u32 dev;
	__u32 open; /* 0 once closed */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CAP_FDS_MAX);
	__type(key, __u64);
	__type(value, struct fd_state);
} fds SEC(".maps");

/* A record is assembled here: the fixed part, then up to three paths; `w` is where
 * dentry names are gathered. One slot per CPU. */
struct file_buf {
	struct cap_file f; /* the record is f and the tail, contiguous */
	char tail[3 * CAP_PATH_MAX + NAME_MAX + 1];
	struct path_walk w; /* where walk_path gathers a path */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* the loader sets the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct file_buf);
} scratch SEC(".maps");

static __always_inline __u64 fd_key(__s32 fd)
{
	return (bpf_get_current_pid_tgid() & 0xffffffff00000000ULL) | (__u32)fd;
}

static __always_inline struct file_buf *buf(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&scratch, &cpu);
}

/* Resolves (mnt, d) and copies the path into the tail at `off`; returns its length. */
static __always_inline __u32 put_path(struct file_buf *b, __u32 off, struct vfsmount *mnt, struct dentry *d)
{
	return copy_path(&b->w, &b->tail[off & (2 * CAP_PATH_MAX - 1)], mnt, d);
}

/* The directory a relative path given with `dfd` is relative to (in the current task),
 * into the tail. */
static __always_inline __u32 put_dir(struct file_buf *b, __u32 off, __s32 dfd)
{
	struct path *p;
	if (dfd == AT_FDCWD && HAVE_TASK_BTF) {
		struct fs_struct *fs = bpf_get_current_task_btf()->fs;
		return put_path(b, off, fs->pwd.mnt, fs->pwd.dentry);
	} else if (dfd == AT_FDCWD) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		p = (struct path *)((void *)BPF_CORE_READ(task, fs) + bpf_core_field_offset(struct fs_struct, pwd));
	} else {
		struct file *f = fd_file(dfd);
		if (!f)
			return 0;
		p = (struct path *)((void *)f + bpf_core_field_offset(struct file, f_path));
	}
	return put_path(b, off, BPF_CORE_READ(p, mnt), BPF_CORE_READ(p, dentry));
}

static __always_inline __u32 put_user_str(struct file_buf *b, __u32 off, const char *s)
{
	if (!s)
		return 0;
	long n = bpf_probe_read_user_str(&b->tail[off & (2 * CAP_PATH_MAX - 1)], CAP_PATH_MAX, s);
	return n > 0 ? (n - 1) & PATH_MASK : 0;
}

/* Whether an absolute path starts with an excluded prefix (at a component boundary). */
static __always_inline bool excluded(struct file_buf *b, __u32 len)
{
	if (b->tail[0] != '/')
		return false;
	for (__u32 i = 0; i < PREFIXES_MAX; i++) {
		if (i >= cap_cfg.nr_prefixes)
			break;
		__u32 key = i;
		struct prefix *p = bpf_map_lookup_elem(&exclude_prefixes, &key);
		if (!p)
			break;
		__u32 n = p->len;
		if (n == 0 || n > PREFIX_MAX || n > len)
			continue;
		bool same = true;
		for (__u32 j = 0; j < PREFIX_MAX; j++) {
			if (j >= n)
				break;
			if (b->tail[j] != p->s[j]) {
				same = false;
				break;
			}
		}
		char next = b->tail[n & (PREFIX_MAX * 2 - 1)];
		if (same && (n == len || next == '/' || p->s[(n - 1) & (PREFIX_MAX - 1)] == '/'))
			return true;
	}
	return false;
}

static __always_inline void begin(struct cap_file *f, __u32 op)
{
	fill_hdr(&f->hdr, CAP_KIND_FILE);
	f->op = op;
	f->fd = -1;
	f->ret = 0;
	f->flags = 0;
	f->mode = 0;
	f->bytes_read = 0;
	f->bytes_written = 0;
	f->reads = 0;
	f->writes = 0;
	f->ino = 0;
	f->dev = 0;
	f->path_len = 0;
	f->path2_len = 0;
	f->cwd_len = 0;
}

static __always_inline void finish(struct file_buf *b)
{
	__u64 len = sizeof(b->f) + b->f.path_len + b->f.path2_len + b->f.cwd_len;
	b->f.hdr.len = len;
	if (len <= sizeof(*b))
		submit(b, len);
}

/* --- open, openat, openat2 --- */

static __always_inline int record_open(long ret, __s32 dfd, const char *path, __u64 flags, __u32 mode)
{
	struct file_buf *b = buf();
	if (!b)
		return 0;
	__u32 path_len = put_user_str(b, 0, path);
	if (excluded(b, path_len))
		return 0;
	begin(&b->f, CAP_FILE_OPEN);
	b->f.ret = ret;
	b->f.flags = flags;
	b->f.mode = mode;
	b->f.path_len = path_len;
	if (path_len && b->tail[0] != '/')
		b->f.cwd_len = put_dir(b, path_len, dfd);
	if (ret >= 0) {
		b->f.fd = ret;
		struct file *file = fd_file(ret);
		struct fd_state st = {};
		if (file && bpf_ksym_exists(bpf_rdonly_cast)) {
			/* 6.2+: a BTF-typed pointer read with plain loads, where BPF_CORE_READ makes
			 * one helper call per pointer (five here). */
			struct inode *inode = bpf_core_cast(file, struct file)->f_inode;
			st.ino = inode->i_ino;
			st.dev = inode->i_sb->s_dev;
		} else if (file) {
			st.ino = BPF_CORE_READ(file, f_inode, i_ino);
			st.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
		}
		b->f.ino = st.ino;
		b->f.dev = st.dev;
		st.open = 1;
		__u64 key = fd_key(ret);
		struct fd_state *old = bpf_map_lookup_elem(&fds, &key);
		if (old)
			*old = st;
		else if (bpf_map_update_elem(&fds, &key, &st, BPF_ANY))
			count_drop(CAP_DROP_FILTER_MAP);
	}
	finish(b);
	return 0;
}

/* --- close: one record with the sums of a tracked file ---
 * At sys_exit the file is already released (close(2) frees it before returning), so the
 * record carries no path: the recorder names it from the file's open record. */

static __always_inline int record_close(__s32 fd, long ret)
{
	__u64 key = fd_key(fd);
	struct fd_state *st = bpf_map_lookup_elem(&fds, &key);
	if (!st || !st->open)
		return 0;
	st->open = 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	begin(&b->f, CAP_FILE_CLOSE);
	b->f.fd = fd;
	b->f.ret = ret;
	b->f.bytes_read = st->bytes_read;
	b->f.bytes_written = st->bytes_written;
	b->f.reads = st->reads;
	b->f.writes = st->writes;
	b->f.ino = st->ino;
	b->f.dev = st->dev;
	finish(b);
	return 0;
}

/* --- read and write on tracked files --- */

static __always_inline int record_rw(__s32 fd, long ret, bool write)
{
	if (ret < 0)
		return 0;
	__u64 key = fd_key(fd);
	struct fd_state *st = bpf_map_lookup_elem(&fds, &key);
	if (!st || !st->open)
		return 0;
	if (write) {
		__sync_fetch_and_add(&st->bytes_written, ret);
		__sync_fetch_and_add(&st->writes, 1);
	} else {
		__sync_fetch_and_add(&st->bytes_read, ret);
		__sync_fetch_and_add(&st->reads, 1);
	}
	if (!cap_cfg.file_rw_events)
		return 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	begin(&b->f, write ? CAP_FILE_WRITE : CAP_FILE_READ);
	b->f.fd = fd;
	b->f.ret = ret;
	if (write) {
		b->f.bytes_written = ret;
		b->f.writes = 1;
	} else {
		b->f.bytes_read = ret;
		b->f.reads = 1;
	}
	b->f.ino = st->ino;
	b->f.dev = st->dev;
	finish(b);
	return 0;
}

/* --- unlink and rename --- */

static __always_inline int record_path_op(__u32 op, long ret, __s32 dfd, const char *path, const char *path2,
					  __u64 flags)
{
	struct file_buf *b = buf();
	if (!b)
		return 0;
	__u32 path_len = put_user_str(b, 0, path);
	if (excluded(b, path_len))
		return 0;
	begin(&b->f, op);
	b->f.ret = ret;
	b->f.flags = flags;
	b->f.path_len = path_len;
	__u32 off = path_len;
	if (op == CAP_FILE_RENAME) {
		b->f.path2_len = put_user_str(b, off, path2);
		off += b->f.path2_len;
	}
	if (path_len && b->tail[0] != '/')
		b->f.cwd_len = put_dir(b, off, dfd);
	finish(b);
	return 0;
}

/* --- the benchmark floor (cap_cfg.file_floor) --- */

static __always_inline int record_floor(__u32 op, __s32 fd, long ret)
{
	struct file_buf *b = buf();
	if (!b)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	b->f.hdr.kind = CAP_KIND_FILE;
	b->f.hdr.abi = CAP_ABI_VERSION;
	b->f.hdr.len = sizeof(b->f);
	b->f.hdr.ktime_ns = bpf_ktime_get_boot_ns();
	b->f.hdr.pid = id >> 32;
	b->f.hdr.tid = (__u32)id;
	b->f.op = op;
	b->f.fd = fd;
	b->f.ret = ret;
	submit(b, sizeof(b->f));
	return 0;
}

/* --- the hooks --- */

SEC("tp_btf/sys_exit")
int BPF_PROG(file_sys_exit, struct pt_regs *regs, long ret)
{
	if (cap_cfg.file_floor == CAP_FLOOR_HOOK)
		return 0;
	long id = SYSCALL_NR(regs);
	switch (id) {
	case NR_read:
	case NR_pread64:
	case NR_readv:
	case NR_write:
	case NR_pwrite64:
	case NR_writev:
	case NR_open:
	case NR_openat:
	case NR_openat2:
	case NR_close:
	case NR_unlink:
	case NR_unlinkat:
	case NR_rename:
	case NR_renameat:
	case NR_renameat2:
		break;
	default:
		return 0;
	}
	if (skip_current() || compat_syscall())
		return 0;
	if (cap_cfg.file_floor == CAP_FLOOR_RECORDS) {
		if (id == NR_close)
			return record_floor(CAP_FILE_CLOSE, (__s32)ARG0(regs), ret);
		if (id == NR_open || id == NR_openat || id == NR_openat2)
			return record_floor(CAP_FILE_OPEN, ret >= 0 ? ret : -1, ret);
		return 0;
	}
	switch (id) {
	case NR_read:
	case NR_pread64:
	case NR_readv:
		return record_rw((__s32)ARG0(regs), ret, false);
	case NR_write:
	case NR_pwrite64:
	case NR_writev:
		return record_rw((__s32)ARG0(regs), ret, true);
	case NR_close:
		return record_close((__s32)ARG0(regs), ret);
	case NR_open:
		return record_open(ret, AT_FDCWD, (const char *)ARG0(regs), ARG1(regs), ARG2(regs));
	case NR_openat:
		return record_open(ret, (__s32)ARG0(regs), (const char *)ARG1(regs), ARG2(regs), ARG3(regs));
	case NR_openat2: {
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)ARG2(regs));
		return record_open(ret, (__s32)ARG0(regs), (const char *)ARG1(regs), how.flags, how.mode);
	}
	case NR_unlink:
		return record_path_op(CAP_FILE_UNLINK, ret, AT_FDCWD, (const char *)ARG0(regs), 0, 0);
	case NR_unlinkat:
		return record_path_op(CAP_FILE_UNLINK, ret, (__s32)ARG0(regs), (const char *)ARG1(regs), 0, ARG2(regs));
	case NR_rename:
		return record_path_op(CAP_FILE_RENAME, ret, AT_FDCWD, (const char *)ARG0(regs), (const char *)ARG1(regs), 0);
	case NR_renameat:
		return record_path_op(CAP_FILE_RENAME, ret, (__s32)ARG0(regs), (const char *)ARG1(regs),
				      (const char *)ARG3(regs), 0);
	case NR_renameat2:
		return record_path_op(CAP_FILE_RENAME, ret, (__s32)ARG0(regs), (const char *)ARG1(regs),
				      (const char *)ARG3(regs), ARG4(regs));
	}
	return 0;
}
