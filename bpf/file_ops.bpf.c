// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * file_ops: open, close, unlink and rename, with reads and writes summed per open file.
 *
 * Hooks: the syscalls tracepoints (enter stashes the arguments by thread, exit records
 * with the result). open(2), unlink(2), rename(2) and renameat(2) exist on x86_64 but
 * not on arm64; the loader switches off the programs whose tracepoint is missing.
 *
 * Only files this probe saw opened are tracked (by process and fd): reads and writes on
 * them add to the file's counts, and close emits one record with the sums. Reads and
 * writes on other descriptors (stdin, sockets, pipes) cost one hash lookup.
 *
 * Paths: the path as the process gave it, and for a relative path the directory it is
 * relative to (the working directory, or the directory of dirfd), resolved here by
 * walking dentries up to the root, crossing mounts (bpf_d_path is not available to
 * tracepoints). Close records carry the open file's own path, resolved the same way.
 * Limits of the walk: at most WALK_DEPTH components and CAP_PATH_MAX bytes (a longer
 * path keeps its last components); the path is as seen from the initial mount namespace's
 * root, not a chroot's or container's; a deleted file keeps its last name.
 * Files still open when a process exits, fds duplicated with dup(2) and fds inherited
 * across fork(2) give no close record.
 */
#include "common.bpf.h"

/* One row per read(2)/write(2) call as well (--file-rw-events). */
const volatile bool file_rw_events = false;

#define AT_FDCWD -100
#define PREFIX_MAX 64
#define PREFIXES_MAX 8
#define WALK_DEPTH 40
#define NAME_MAX 255
#define PATH_MASK (CAP_PATH_MAX - 1)

enum op {
	OP_OPEN = 1,
	OP_UNLINK,
	OP_RENAME,
	OP_READ,
	OP_WRITE,
};

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

/* A syscall between its enter and exit, by thread id. */
struct call {
	__u32 op;
	__s32 dfd;
	__u64 flags;
	__u32 mode;
	__u32 _pad;
	const char *path;
	const char *path2;
	__u64 fdkey;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

/* Sums of an open file, by (tgid << 32 | fd). LRU: files of processes that exit without
 * closing them age out. */
struct fd_state {
	__u64 bytes_read;
	__u64 bytes_written;
	__u32 reads;
	__u32 writes;
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct fd_state);
} fds SEC(".maps");

/* A record is assembled here: the fixed part, then up to three paths; `walk` is where
 * dentry names are gathered, from the end backwards. One slot per CPU. */
struct file_buf {
	struct cap_file f; /* the record is f and the tail, contiguous */
	char tail[3 * CAP_PATH_MAX + NAME_MAX + 1];
	char walk[CAP_PATH_MAX + NAME_MAX + 1];
	__u32 pos; /* walk_path's position in walk */
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

static __always_inline struct file *fd_file(struct task_struct *task, __s32 fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (__u32)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **arr = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
	return f;
}

/* Gathers the path of (vfsmnt, dentry) at the end of b->walk; returns where it starts
 * (the path is b->walk[start .. CAP_PATH_MAX)). The position lives in the map value, not
 * in a register: the verifier then sees every iteration alike and the loop verifies in
 * linear time instead of exploring each distinct position. */
static __always_inline __u32 walk_path(struct file_buf *b, struct vfsmount *vfsmnt, struct dentry *dentry)
{
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	b->pos = CAP_PATH_MAX;
	for (int i = 0; i < WALK_DEPTH; i++) {
		struct dentry *root = BPF_CORE_READ(mnt, mnt.mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		if (dentry == root || dentry == parent) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (dentry != root || up == mnt)
				break; /* the root of everything */
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			continue;
		}
		__u32 len = BPF_CORE_READ(dentry, d_name.len) & NAME_MAX;
		__u32 pos = b->pos & (2 * CAP_PATH_MAX - 1);
		if (len + 1 > pos)
			break;
		pos -= len;
		bpf_probe_read_kernel(&b->walk[pos & PATH_MASK], len, BPF_CORE_READ(dentry, d_name.name));
		pos -= 1;
		b->walk[pos & PATH_MASK] = '/';
		b->pos = pos;
		dentry = parent;
	}
	__u32 pos = b->pos & (2 * CAP_PATH_MAX - 1);
	if (pos == CAP_PATH_MAX) {
		pos -= 1;
		b->walk[pos & PATH_MASK] = '/';
	}
	return pos;
}

/* Resolves a path and copies it into the tail at `off`; returns its length. */
static __always_inline __u32 put_path(struct file_buf *b, __u32 off, struct path *p)
{
	struct vfsmount *mnt = BPF_CORE_READ(p, mnt);
	struct dentry *d = BPF_CORE_READ(p, dentry);
	if (!mnt || !d)
		return 0;
	__u32 start = walk_path(b, mnt, d);
	__u32 len = (CAP_PATH_MAX - start) & PATH_MASK;
	if (start == 0)
		len = CAP_PATH_MAX - 1;
	bpf_probe_read_kernel(&b->tail[off & (2 * CAP_PATH_MAX - 1)], len, &b->walk[start & PATH_MASK]);
	return len;
}

/* The directory a relative path given with `dfd` is relative to, into the tail. */
static __always_inline __u32 put_dir(struct file_buf *b, __u32 off, struct task_struct *task, __s32 dfd)
{
	if (dfd == AT_FDCWD)
		return put_path(b, off, (struct path *)((void *)BPF_CORE_READ(task, fs) + bpf_core_field_offset(struct fs_struct, pwd)));
	struct file *f = fd_file(task, dfd);
	if (!f)
		return 0;
	return put_path(b, off, (struct path *)((void *)f + bpf_core_field_offset(struct file, f_path)));
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

static __always_inline void begin(struct cap_file *f, struct task_struct *task, __u32 op)
{
	fill_hdr(&f->hdr, CAP_KIND_FILE, task);
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

static __always_inline int stash(__u32 op, __s32 dfd, const char *path, const char *path2, __u64 flags, __u32 mode)
{
	if (skip_current())
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call c = { .op = op, .dfd = dfd, .flags = flags, .mode = mode, .path = path, .path2 = path2 };
	if (bpf_map_update_elem(&calls, &tid, &c, BPF_ANY))
		count_drop(CAP_DROP_FILTER_MAP);
	return 0;
}

/* Takes the stashed call of this thread, if it is an `op`. */
static __always_inline bool unstash(__u32 op, struct call *out)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	if (!c)
		return false;
	*out = *c;
	bpf_map_delete_elem(&calls, &tid);
	return out->op == op;
}

/* --- open, openat, openat2 --- */

static __always_inline int exit_open(long ret)
{
	struct call c;
	if (!unstash(OP_OPEN, &c))
		return 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 path_len = put_user_str(b, 0, c.path);
	if (excluded(b, path_len))
		return 0;
	begin(&b->f, task, CAP_FILE_OPEN);
	b->f.ret = ret;
	b->f.flags = c.flags;
	b->f.mode = c.mode;
	b->f.path_len = path_len;
	if (path_len && b->tail[0] != '/')
		b->f.cwd_len = put_dir(b, path_len, task, c.dfd);
	if (ret >= 0) {
		b->f.fd = ret;
		struct file *file = fd_file(task, ret);
		struct fd_state st = {};
		if (file) {
			st.ino = BPF_CORE_READ(file, f_inode, i_ino);
			st.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
		}
		b->f.ino = st.ino;
		b->f.dev = st.dev;
		__u64 key = fd_key(ret);
		bpf_map_update_elem(&fds, &key, &st, BPF_ANY);
	}
	finish(b);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_OPEN, AT_FDCWD, (const char *)ctx->args[0], 0, ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_exit_open")
int exit_open_tp(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_OPEN, (__s32)ctx->args[0], (const char *)ctx->args[1], 0, ctx->args[2], ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	if (skip_current())
		return 0;
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return stash(OP_OPEN, (__s32)ctx->args[0], (const char *)ctx->args[1], 0, how.flags, how.mode);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int exit_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return exit_open(ctx->ret);
}

/* --- close: one record with the sums of a tracked file --- */

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__s32 fd = ctx->args[0];
	__u64 key = fd_key(fd);
	struct fd_state *st = bpf_map_lookup_elem(&fds, &key);
	if (!st)
		return 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	begin(&b->f, task, CAP_FILE_CLOSE);
	b->f.fd = fd;
	b->f.bytes_read = st->bytes_read;
	b->f.bytes_written = st->bytes_written;
	b->f.reads = st->reads;
	b->f.writes = st->writes;
	b->f.ino = st->ino;
	b->f.dev = st->dev;
	bpf_map_delete_elem(&fds, &key);
	struct file *file = fd_file(task, fd);
	if (file)
		b->f.path_len = put_path(b, 0, (struct path *)((void *)file + bpf_core_field_offset(struct file, f_path)));
	finish(b);
	return 0;
}

/* --- read and write on tracked files --- */

static __always_inline int enter_rw(__s32 fd, __u32 op)
{
	__u64 key = fd_key(fd);
	if (!bpf_map_lookup_elem(&fds, &key))
		return 0;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call c = { .op = op, .fdkey = key };
	bpf_map_update_elem(&calls, &tid, &c, BPF_ANY);
	return 0;
}

static __always_inline int exit_rw(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);
	if (!c)
		return 0;
	__u32 op = c->op;
	__u64 key = c->fdkey;
	bpf_map_delete_elem(&calls, &tid);
	if ((op != OP_READ && op != OP_WRITE) || ret < 0)
		return 0;
	struct fd_state *st = bpf_map_lookup_elem(&fds, &key);
	if (!st)
		return 0;
	if (op == OP_READ) {
		__sync_fetch_and_add(&st->bytes_read, ret);
		__sync_fetch_and_add(&st->reads, 1);
	} else {
		__sync_fetch_and_add(&st->bytes_written, ret);
		__sync_fetch_and_add(&st->writes, 1);
	}
	if (!file_rw_events)
		return 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	begin(&b->f, (struct task_struct *)bpf_get_current_task(), op == OP_READ ? CAP_FILE_READ : CAP_FILE_WRITE);
	b->f.fd = (__s32)key;
	b->f.ret = ret;
	if (op == OP_READ) {
		b->f.bytes_read = ret;
		b->f.reads = 1;
	} else {
		b->f.bytes_written = ret;
		b->f.writes = 1;
	}
	b->f.ino = st->ino;
	b->f.dev = st->dev;
	finish(b);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int enter_read(struct trace_event_raw_sys_enter *ctx) { return enter_rw(ctx->args[0], OP_READ); }
SEC("tracepoint/syscalls/sys_exit_read")
int exit_read(struct trace_event_raw_sys_exit *ctx) { return exit_rw(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_pread64")
int enter_pread64(struct trace_event_raw_sys_enter *ctx) { return enter_rw(ctx->args[0], OP_READ); }
SEC("tracepoint/syscalls/sys_exit_pread64")
int exit_pread64(struct trace_event_raw_sys_exit *ctx) { return exit_rw(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_readv")
int enter_readv(struct trace_event_raw_sys_enter *ctx) { return enter_rw(ctx->args[0], OP_READ); }
SEC("tracepoint/syscalls/sys_exit_readv")
int exit_readv(struct trace_event_raw_sys_exit *ctx) { return exit_rw(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(struct trace_event_raw_sys_enter *ctx) { return enter_rw(ctx->args[0], OP_WRITE); }
SEC("tracepoint/syscalls/sys_exit_write")
int exit_write(struct trace_event_raw_sys_exit *ctx) { return exit_rw(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_pwrite64")
int enter_pwrite64(struct trace_event_raw_sys_enter *ctx) { return enter_rw(ctx->args[0], OP_WRITE); }
SEC("tracepoint/syscalls/sys_exit_pwrite64")
int exit_pwrite64(struct trace_event_raw_sys_exit *ctx) { return exit_rw(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(struct trace_event_raw_sys_enter *ctx) { return enter_rw(ctx->args[0], OP_WRITE); }
SEC("tracepoint/syscalls/sys_exit_writev")
int exit_writev(struct trace_event_raw_sys_exit *ctx) { return exit_rw(ctx->ret); }

/* --- unlink and rename --- */

static __always_inline int exit_path_op(__u32 op, long ret)
{
	struct call c;
	if (!unstash(op, &c))
		return 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 path_len = put_user_str(b, 0, c.path);
	if (excluded(b, path_len))
		return 0;
	begin(&b->f, task, op == OP_UNLINK ? CAP_FILE_UNLINK : CAP_FILE_RENAME);
	b->f.ret = ret;
	b->f.flags = c.flags;
	b->f.path_len = path_len;
	__u32 off = path_len;
	if (op == OP_RENAME) {
		b->f.path2_len = put_user_str(b, off, c.path2);
		off += b->f.path2_len;
	}
	if (path_len && b->tail[0] != '/')
		b->f.cwd_len = put_dir(b, off, task, c.dfd);
	finish(b);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_unlink")
int enter_unlink(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_UNLINK, AT_FDCWD, (const char *)ctx->args[0], 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_exit_unlink")
int exit_unlink(struct trace_event_raw_sys_exit *ctx) { return exit_path_op(OP_UNLINK, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_unlinkat")
int enter_unlinkat(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_UNLINK, (__s32)ctx->args[0], (const char *)ctx->args[1], 0, ctx->args[2], 0);
}

SEC("tracepoint/syscalls/sys_exit_unlinkat")
int exit_unlinkat(struct trace_event_raw_sys_exit *ctx) { return exit_path_op(OP_UNLINK, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_rename")
int enter_rename(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_RENAME, AT_FDCWD, (const char *)ctx->args[0], (const char *)ctx->args[1], 0, 0);
}

SEC("tracepoint/syscalls/sys_exit_rename")
int exit_rename(struct trace_event_raw_sys_exit *ctx) { return exit_path_op(OP_RENAME, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_renameat")
int enter_renameat(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_RENAME, (__s32)ctx->args[0], (const char *)ctx->args[1], (const char *)ctx->args[3], 0, 0);
}

SEC("tracepoint/syscalls/sys_exit_renameat")
int exit_renameat(struct trace_event_raw_sys_exit *ctx) { return exit_path_op(OP_RENAME, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_renameat2")
int enter_renameat2(struct trace_event_raw_sys_enter *ctx)
{
	return stash(OP_RENAME, (__s32)ctx->args[0], (const char *)ctx->args[1], (const char *)ctx->args[3], ctx->args[4], 0);
}

SEC("tracepoint/syscalls/sys_exit_renameat2")
int exit_renameat2(struct trace_event_raw_sys_exit *ctx) { return exit_path_op(OP_RENAME, ctx->ret); }
