// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * file_ops: open, close, unlink, rename and truncate, with reads and writes summed per
 * open file (not per descriptor number).
 *
 * Hooks: where the kernel lets fexit programs load, fexit on each recorded syscall's
 * wrapper (`__x64_sys_openat`, ...: the same registers and result, and no other syscall
 * passes a program); elsewhere (this is what a kernel without BPF trampolines allows)
 * the BTF raw tracepoint tp_btf/sys_exit, which sees every syscall with its saved
 * registers: the arguments are still there and the result is known, so nothing is
 * stashed between enter and exit, and no program runs at sys_enter (an attached program
 * costs every syscall on the system, recorded or not). Why not the per-syscall
 * tracepoints (syscalls/sys_enter_openat, ...): they run each program through the perf
 * layer; six of them with empty programs measured 1.3x to 1.7x on an open/write/close
 * loop here, which left no room for the probe's own work. Syscall numbers differ per
 * architecture (below); 32-bit (compat) syscalls on x86_64 are not recorded.
 * tp_btf/sched_process_fork and tp_btf/sched_process_exit follow descriptors across fork
 * and exit; iter/task_file lists the files open at start and at the end. The same
 * sys_exit program writes the exec table's records of failed execs (exec.bpf.h).
 *
 * Open files: a file this probe saw opened (or found open at start) is tracked by its
 * struct file, the kernel's open file that every descriptor made from it shares:
 * `files` holds its sums and how many descriptors the probe knows to hold it; `fds`
 * maps each such descriptor (tgid, fd) to it. Reads and writes find the file through
 * `fds`, so bytes through any descriptor of it count, and cost one hash lookup on
 * descriptors of untracked files (stdin, sockets, pipes). Descriptors are counted as they appear (open; dup, dup2, dup3 and
 * fcntl(F_DUPFD*) at their exit; a fork's child inherits every descriptor of its
 * parent's table, walked at sched_process_fork) and as they go (close; close_range;
 * dup2/dup3 over one; exec closing the O_CLOEXEC ones, found by walking the table after
 * the exec; the whole table at the exit of a process's last thread). When the last one
 * goes, one close record carries the sums, and `how` says what closed it. Without fentry
 * or kprobes (this is all a tracepoint-only kernel allows), the kernel's own reference
 * count is not what decides: a mapping or an in-flight call holds references that no
 * descriptor does.
 * Not followed: descriptors passed over a Unix socket (SCM_RIGHTS) or taken with
 * pidfd_getfd, tables shared between processes with clone(CLONE_FILES) (not threads),
 * descriptors numbered WALK_FDS_MAX and above in the fork, exit and exec walks; io_uring
 * and memory-mapped writes are not seen (a shared writable mapping marks the file).
 *
 * Paths: the path as the process gave it, and for a relative path the directory it is
 * relative to (the working directory, or the directory of dirfd), resolved by walking
 * dentries up to the root (path.bpf.h, which says the walk's limits). Close records carry
 * no path: the recorder names the file by its open record (file_key joins them).
 */
#include "common.bpf.h"
#include "path.bpf.h"
#include "syscall.bpf.h"
#include "exec.bpf.h"
#include "spare.bpf.h"

/* Set by the loader in cap_cfg: file_rw_events (one row per read(2)/write(2) call as well,
 * --file-rw-events), nr_prefixes (entries of exclude_prefixes in use), and file_floor,
 * for benchmarks only (CAPTURE_BENCH_FILE_FLOOR), to measure what no file probe on this
 * hook can avoid: CAP_FLOOR_HOOK returns at once (the cost of the hook itself);
 * CAP_FLOOR_RECORDS emits one record per open and per close with the time, the process
 * and the fd, through the same ring buffers, and nothing else (no path, no per-file
 * state, no other header field). CAP_FLOOR_OFF always outside benchmarks: the verifier
 * then removes that code. */

#define AT_FDCWD -100
#define EBADF 9
#define PREFIX_MAX CAP_PREFIX_MAX
#define PREFIXES_MAX CAP_PREFIXES_MAX
#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#define PROT_WRITE 2
#define MAP_TYPE 0x0f
#define MAP_SHARED 0x01
#define MAP_SHARED_VALIDATE 0x03
#define S_IFMT 00170000
#define S_IFREG 0100000
/* The fork, exit and exec walks look at descriptors below this (with bpf_loop, 5.17+;
 * before, below WALK_FDS_OLD). */
#define WALK_FDS_MAX 4096
#define WALK_FDS_OLD 128

/* Syscall numbers (asm/unistd.h); a negative number stands for a call the architecture
 * does not have. */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_open 2
#define NR_close 3
#define NR_mmap 9
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_dup 32
#define NR_dup2 33
#define NR_sendfile 40
#define NR_execve 59
#define NR_fcntl 72
#define NR_truncate 76
#define NR_ftruncate 77
#define NR_rename 82
#define NR_unlink 87
#define NR_openat 257
#define NR_unlinkat 263
#define NR_renameat 264
#define NR_splice 275
#define NR_dup3 292
#define NR_preadv 295
#define NR_pwritev 296
#define NR_renameat2 316
#define NR_execveat 322
#define NR_copy_file_range 326
#define NR_preadv2 327
#define NR_pwritev2 328
#define NR_close_range 436
#define NR_openat2 437
#elif defined(__TARGET_ARCH_arm64)
#define NR_read 63
#define NR_write 64
#define NR_open -2
#define NR_close 57
#define NR_mmap 222
#define NR_pread64 67
#define NR_pwrite64 68
#define NR_readv 65
#define NR_writev 66
#define NR_dup 23
#define NR_dup2 -5
#define NR_sendfile 71
#define NR_execve 221
#define NR_fcntl 25
#define NR_truncate 45
#define NR_ftruncate 46
#define NR_rename -3
#define NR_unlink -4
#define NR_openat 56
#define NR_unlinkat 35
#define NR_renameat 38
#define NR_splice 76
#define NR_dup3 24
#define NR_preadv 69
#define NR_pwritev 70
#define NR_renameat2 276
#define NR_execveat 281
#define NR_copy_file_range 285
#define NR_preadv2 286
#define NR_pwritev2 287
#define NR_close_range 436
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

/* An open file's sums, by its struct file. nfds is how many descriptors the probe knows
 * to hold it; 0 once its close record is written (the entry then waits, closed, for the
 * kernel to hand the same struct file to a later open, which reuses it in place: a
 * lookup instead of an insert and a delete). LRU, so closed entries age out; an open one
 * lost to it when the table is full loses its sums (CAP_FDS_MAX files open at once). */
/* A file state claimed by the start-up scan (kernel-side only, never in a record): an
 * open in flight while the scan ran (its descriptor installed, its sys_exit not yet run)
 * is found by both; the scan's row stands for it, marked preexisting. */
#define SCAN_CLAIM 0x8000
#define SCAN_GRACE_NS 2000000000ULL

/* When the start-up scan began (0 before). */
__u64 scan_ns = 0;

struct file_state {
	__u64 bytes_read;
	__u64 bytes_written;
	__u32 reads;
	__u32 writes;
	__u64 ino;
	__u32 dev;
	__u32 nfds;
	__u16 fflags; /* CAP_FILE_PREEXISTING | CAP_FILE_MMAP_WRITE | SCAN_CLAIM */
	__u16 _pad0;
	__u32 gen; /* this open's, so a descriptor of an earlier file at the address is told apart */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CAP_FDS_MAX);
	__type(key, __u64);
	__type(value, struct file_state);
} files SEC(".maps");

/* A descriptor's file: its struct file (its key in `files`; 0 once the descriptor is
 * gone) and the generation of the open it came from. close(2) frees the file before its
 * exit hook runs, and an open on another CPU can get the same address first (the closing
 * task preempted at the hook: 1 or 2 of 6,000 closes under four writers on 7.2): that
 * open writes the old file's close record and takes the entry over with its own
 * generation, and the late close, finding another generation there, leaves the new file
 * alone and writes a record that names the closer (emit_late) for the recorder to join.
 * Only close(2) frees the file so early (__fput_sync): a dup2 over the descriptor and
 * close_range leave it to the return to user space (fput's task work), after the hook,
 * so record_close alone needs the check; the kernel test closes files all three ways. */
struct fd_ref {
	__u64 fkey;
	__u32 gen;
	__u32 _pad;
};

/* The tracked file behind each descriptor the probe knows of, by (tgid << 32 | fd);
 * fkey 0 once the descriptor is gone (reused in place by the next descriptor of that
 * number). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 2 * CAP_FDS_MAX);
	__type(key, __u64);
	__type(value, struct fd_ref);
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

/* Close records are assembled apart from `scratch`: track() can find a close this probe
 * missed, and write its record, while an open record is being assembled there (it used
 * to be overwritten: the open lost, the close written twice). One slot per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* the loader sets the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct cap_file);
} close_scratch SEC(".maps");

static __always_inline __u64 fd_key_of(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

static __always_inline __u64 fd_key(__s32 fd)
{
	return fd_key_of(bpf_get_current_pid_tgid() >> 32, fd);
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

static __always_inline void begin_hdr(struct cap_file *f, __u32 op)
{
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
	f->file_key = 0;
	f->length = 0;
	f->how = 0;
	f->fflags = 0;
	f->gen = 0;
}

static __always_inline void begin(struct cap_file *f, __u32 op)
{
	fill_hdr(&f->hdr, CAP_KIND_FILE);
	begin_hdr(f, op);
}

static __always_inline void finish(struct file_buf *b)
{
	__u64 len = sizeof(b->f) + b->f.path_len + b->f.path2_len + b->f.cwd_len;
	b->f.hdr.len = len;
	if (len <= sizeof(*b))
		submit(b, len);
}

/* The tracked open file `fkey` (its struct file), or NULL. */
static __always_inline struct file_state *tracked(__u64 fkey)
{
	if (!fkey)
		return 0;
	struct file_state *st = bpf_map_lookup_elem(&files, &fkey);
	return st && st->nfds ? st : 0;
}

/* The tracked file a descriptor refers to: only the open it came from, not a later one
 * at the same address. */
static __always_inline struct file_state *tracked_ref(const struct fd_ref *r)
{
	struct file_state *st = tracked(r->fkey);
	return st && st->gen == r->gen ? st : 0;
}

/* A new open's generation: its time, which two opens of one address never share. */
static __always_inline __u32 new_gen(void)
{
	return (__u32)bpf_ktime_get_ns();
}

/* The close record of `st`: its sums, written by the current task (or by `task`, from an
 * iterator); `mark` is 0 or CAP_FILE_REUSED. */
static __always_inline void emit_close(struct file_state *st, __u64 fkey, __s32 fd, __u16 how, __s64 ret,
				       struct task_struct *task, __u16 mark)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct cap_file *f = bpf_map_lookup_elem(&close_scratch, &cpu);
	if (!f)
		return;
	if (task) {
		fill_hdr_task(&f->hdr, CAP_KIND_FILE, task);
		begin_hdr(f, CAP_FILE_CLOSE);
	} else {
		begin(f, CAP_FILE_CLOSE);
	}
	f->fd = fd;
	f->ret = ret;
	f->bytes_read = st->bytes_read;
	f->bytes_written = st->bytes_written;
	f->reads = st->reads;
	f->writes = st->writes;
	f->ino = st->ino;
	f->dev = st->dev;
	f->file_key = fkey;
	f->how = how;
	f->fflags = (st->fflags & ~SCAN_CLAIM) | mark;
	f->gen = st->gen;
	f->hdr.len = sizeof(*f);
	submit(f, sizeof(*f));
}

/* The closer's record of a file whose close an open that reused its struct wrote first
 * (CAP_FILE_REUSED, in track()): this task's process, descriptor and result, for that
 * row. Its sums are in the other record. */
static __noinline void emit_late(__u64 fkey, __u32 gen, __s32 fd, __u16 how, __s64 ret)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct cap_file *f = bpf_map_lookup_elem(&close_scratch, &cpu);
	if (!f)
		return;
	begin(f, CAP_FILE_CLOSE);
	f->fd = fd;
	f->ret = ret;
	f->file_key = fkey;
	f->how = how;
	f->fflags = CAP_FILE_LATE;
	f->gen = gen;
	f->hdr.len = sizeof(*f);
	submit(f, sizeof(*f));
}

/* The descriptor `key` (tgid << 32 | fd) is gone: its file loses one holder, and the last
 * one gone writes the file's close record. */
static __noinline int drop_fd(__u64 key, __u32 how, __s64 ret)
{
	struct fd_ref *r = bpf_map_lookup_elem(&fds, &key);
	if (!r || !r->fkey)
		return 0;
	struct fd_ref ref = *r;
	r->fkey = 0;
	struct file_state *st = tracked_ref(&ref);
	if (!st)
		return 0;
	__u64 fkey = ref.fkey;
	/* An atomic add, then a read: fetch-and-add needs BPF atomics (5.12+). Two last
	 * descriptors closed at the same instant on two CPUs could both read 0 here. */
	__sync_fetch_and_add(&st->nfds, -1);
	if (st->nfds != 0)
		return 0;
	emit_close(st, fkey, (__s32)key, how, ret, 0, 0);
	return 0;
}

/* A new descriptor `key` now refers to the open file `fkey`: whatever file the same
 * number referred to before loses it (dup2 over it, or a close this probe missed), and a
 * tracked file gains it. */
static __always_inline void add_fd(__u64 key, __u64 fkey)
{
	struct fd_ref *old = bpf_map_lookup_elem(&fds, &key);
	struct file_state *st = tracked(fkey);
	if (old && st && old->fkey == fkey && old->gen == st->gen)
		return;
	if (old && old->fkey)
		drop_fd(key, CAP_CLOSE_CLOSE, 0);
	st = tracked(fkey); /* the drop may have closed it */
	if (!st)
		return;
	__sync_fetch_and_add(&st->nfds, 1);
	struct fd_ref ref = { .fkey = fkey, .gen = st->gen };
	if (old)
		*old = ref;
	else if (bpf_map_update_elem(&fds, &key, &ref, BPF_ANY))
		count_drop(CAP_DROP_FILTER_MAP);
}

/* --- open, openat, openat2 --- */

static __always_inline void file_ids(struct file *file, struct file_state *st)
{
	if (file && bpf_ksym_exists(bpf_rdonly_cast)) {
		/* 6.2+: a BTF-typed pointer read with plain loads, where BPF_CORE_READ makes
		 * one helper call per pointer (five here). */
		struct inode *inode = bpf_core_cast(file, struct file)->f_inode;
		st->ino = inode->i_ino;
		st->dev = inode->i_sb->s_dev;
	} else if (file) {
		st->ino = BPF_CORE_READ(file, f_inode, i_ino);
		st->dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	}
}

/* The descriptor `key` now refers to the newly tracked `fkey`, of generation `gen` (a
 * file it referred to before lost a close this probe missed). */
static __always_inline void set_fd(__u64 key, __u64 fkey, __u32 gen)
{
	struct fd_ref ref = { .fkey = fkey, .gen = gen };
	struct fd_ref *prev = bpf_map_lookup_elem(&fds, &key);
	if (prev) {
		if (prev->fkey && (prev->fkey != fkey || prev->gen != gen))
			drop_fd(key, CAP_CLOSE_CLOSE, 0); /* a close this probe missed */
		*prev = ref;
	} else if (bpf_map_update_elem(&fds, &key, &ref, BPF_ANY)) {
		count_drop(CAP_DROP_FILTER_MAP);
	}
}

/* Starts tracking `file`, open at descriptor `key`; returns 1 when the start-up scan
 * already wrote this open's row (the caller writes none). */
static __always_inline int track(__u64 key, struct file *file, struct file_state *st)
{
	__u64 fkey = (__u64)file;
	struct file_state *old = bpf_map_lookup_elem(&files, &fkey);
	if (!old) {
		if (!bpf_map_update_elem(&files, &fkey, st, BPF_NOEXIST))
			goto fds;
		/* Claimed between the lookup and the insert: by the scan, or the map is full. */
		old = bpf_map_lookup_elem(&files, &fkey);
		if (!old) {
			count_drop(CAP_DROP_FILTER_MAP);
			return 0;
		}
	}
	if ((old->fflags & SCAN_CLAIM) && old->ino == st->ino && old->dev == st->dev &&
	    bpf_ktime_get_ns() - scan_ns < SCAN_GRACE_NS) {
		old->fflags &= ~SCAN_CLAIM;
		return 1;
	}
	/* A new open at the address of a file still tracked: the kernel freed that one and
	 * reused its struct file before its close was seen (its closer not yet at its hook,
	 * or a process sharing the descriptor table closed it, CLONE_FILES). Its record, with
	 * its sums, first; the closer's own record, if it comes, names it (emit_late). */
	if (old->nfds)
		emit_close(old, fkey, -1, CAP_CLOSE_CLOSE, 0, 0, CAP_FILE_REUSED);
	*old = *st;
fds:
	set_fd(key, fkey, st->gen);
	return 0;
}

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
		struct file_state st = { .nfds = 1, .gen = new_gen() };
		file_ids(file, &st);
		b->f.ino = st.ino;
		b->f.dev = st.dev;
		b->f.file_key = (__u64)file;
		if (file && track(fd_key(ret), file, &st))
			return 0;
	}
	finish(b);
	return 0;
}

/* --- reads, writes and copies on tracked files --- */

static __always_inline void rw_event(__s32 fd, long ret, bool write, __u64 fkey, struct file_state *st)
{
	struct file_buf *b = buf();
	if (!b)
		return;
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
	b->f.file_key = fkey;
	finish(b);
}

/* A read or write: the file behind the descriptor, from `fds` (every descriptor of a
 * tracked file is there; a descriptor of anything else, a pipe, a socket, a terminal,
 * costs this one lookup), then its sums. */
static __always_inline int record_rw(__s32 fd, long ret, bool write)
{
	if (ret < 0)
		return 0;
	__u64 key = fd_key(fd);
	struct fd_ref *r = bpf_map_lookup_elem(&fds, &key);
	if (!r)
		return 0;
	__u64 fkey = r->fkey;
	struct file_state *st = tracked_ref(r);
	if (!st)
		return 0;
	if (write) {
		__sync_fetch_and_add(&st->bytes_written, ret);
		__sync_fetch_and_add(&st->writes, 1);
	} else {
		__sync_fetch_and_add(&st->bytes_read, ret);
		__sync_fetch_and_add(&st->reads, 1);
	}
	if (cap_cfg.file_rw_events)
		rw_event(fd, ret, write, fkey, st);
	return 0;
}

/* sendfile, splice, copy_file_range: `ret` bytes read from one file, written to another. */
static __always_inline int record_copy(__s32 in, __s32 out, long ret)
{
	if (ret <= 0)
		return 0;
	record_rw(in, ret, false);
	record_rw(out, ret, true);
	return 0;
}

/* mmap: a shared writable mapping of a tracked file marks it (writes through the mapping
 * reach the file without a syscall). */
static __always_inline int record_mmap(long ret, __u64 prot, __u64 flags, __s32 fd)
{
	if (ret < 0 && ret > -4096)
		return 0;
	__u64 type = flags & MAP_TYPE;
	if (fd < 0 || !(prot & PROT_WRITE) || (type != MAP_SHARED && type != MAP_SHARED_VALIDATE))
		return 0;
	struct file_state *st = tracked((__u64)fd_file(fd));
	if (st)
		st->fflags |= CAP_FILE_MMAP_WRITE;
	return 0;
}

/* --- descriptors coming and going --- */

static __always_inline int record_close(__s32 fd, long ret)
{
	if (ret == -EBADF)
		return 0;
	__u64 key = fd_key(fd);
	struct fd_ref *r = bpf_map_lookup_elem(&fds, &key);
	if (!r || !r->fkey)
		return 0;
	struct file_state *st = bpf_map_lookup_elem(&files, &r->fkey);
	if (st && st->gen != r->gen) {
		/* close(2) freed the file before this hook ran, an open reused its struct
		 * and wrote its close: this record names the closer for it. */
		emit_late(r->fkey, r->gen, fd, CAP_CLOSE_CLOSE, ret);
		r->fkey = 0;
		return 0;
	}
	return drop_fd(key, CAP_CLOSE_CLOSE, ret);
}

/* dup, dup2, dup3, fcntl(F_DUPFD*): `ret` is the new descriptor. */
static __always_inline int record_dup(long ret)
{
	if (ret < 0)
		return 0;
	add_fd(fd_key(ret), (__u64)fd_file(ret));
	return 0;
}

enum walk_mode { WALK_FORK, WALK_EXIT, WALK_GONE };

struct walk_ctx {
	__u32 tgid;
	__u32 mode;  /* enum walk_mode */
	__u32 how;   /* CAP_CLOSE_*, for WALK_EXIT and WALK_GONE */
	__u32 first;
	__u32 end;   /* one past the last descriptor to look at */
	struct file **arr; /* the descriptor table's array */
};

/* The fork and exit walks read the table's slots WALK_CHUNK at a time (one kernel read)
 * and look only at the descriptors in use: an exit then costs about a lookup per open
 * descriptor, not one per slot. */
#define WALK_CHUNK 16

/* WALK_FORK: the child (tgid) inherited these slots of its table; WALK_EXIT: the process
 * (tgid) is gone. Slots [first + i * WALK_CHUNK, + WALK_CHUNK). */
static long walk_chunk(__u32 i, struct walk_ctx *c)
{
	__u32 base = c->first + i * WALK_CHUNK;
	if (base >= c->end)
		return 1;
	__u32 n = c->end - base;
	if (n > WALK_CHUNK)
		n = WALK_CHUNK;
	/* A whole chunk: the array's size (max_fds) is a multiple of 64 (BITS_PER_LONG) on
	 * every kernel, and so is WALK_FDS_MAX, so a chunk never runs past its end. */
	struct file *slots[WALK_CHUNK] = {};
	if (bpf_probe_read_kernel(slots, sizeof(slots), &c->arr[base]))
		return 0;
	for (__u32 j = 0; j < WALK_CHUNK; j++) {
		if (j >= n)
			break;
		if (!slots[j])
			continue;
		__u64 key = fd_key_of(c->tgid, base + j);
		if (c->mode == WALK_FORK) {
			add_fd(key, (__u64)slots[j]);
		} else {
			struct fd_ref *r = bpf_map_lookup_elem(&fds, &key);
			if (r && r->fkey)
				drop_fd(key, c->how, 0);
		}
	}
	return 0;
}

/* WALK_GONE: a descriptor the probe knew that is no longer in the table (exec's
 * O_CLOEXEC, close_range): its slot is empty or holds another file now, so every
 * descriptor number in the range is looked up. */
static long walk_fd(__u32 i, struct walk_ctx *c)
{
	__u32 fd = c->first + i;
	if (fd >= c->end)
		return 1;
	__u64 key = fd_key_of(c->tgid, fd);
	struct fd_ref *r = bpf_map_lookup_elem(&fds, &key);
	if (!r || !r->fkey)
		return 0;
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &c->arr[fd]);
	if ((__u64)f == r->fkey)
		return 0;
	drop_fd(key, c->how, 0);
	return 0;
}

/* Walks with bpf_loop (5.17+) where `loop`, else with a bounded loop over the first
 * WALK_FDS_OLD descriptors. The two are separate programs (names ending _loop and _noloop)
 * and the loader loads the one this kernel takes: an older kernel rejects a program that
 * so much as refers to a callback, even in code it would never run. */
static __always_inline void walk(struct walk_ctx *c, bool loop)
{
	if (c->end > WALK_FDS_MAX)
		c->end = WALK_FDS_MAX;
	if (c->first >= c->end)
		return;
	__u32 span = c->end - c->first;
	if (c->mode == WALK_GONE) {
		if (loop) {
			bpf_loop(span, walk_fd, c, 0);
			return;
		}
		for (__u32 i = 0; i < WALK_FDS_OLD; i++)
			if (walk_fd(i, c))
				break;
		return;
	}
	if (loop) {
		bpf_loop((span + WALK_CHUNK - 1) / WALK_CHUNK, walk_chunk, c, 0);
		return;
	}
	for (__u32 i = 0; i < WALK_FDS_OLD / WALK_CHUNK; i++)
		if (walk_chunk(i, c))
			break;
}

/* The descriptor table of `t`: its array and size. */
static __always_inline void table_of(struct task_struct *t, struct walk_ctx *c)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	c->arr = BPF_CORE_READ(fdt, fd);
	__u32 max = BPF_CORE_READ(fdt, max_fds);
	if (c->end > max)
		c->end = max;
}

/* After a successful exec, or close_range: the descriptors the probe knew in [first,
 * end) that are no longer in the table. */
static __always_inline int record_gone(__u32 first, __u64 last, __u32 how, bool loop)
{
	struct walk_ctx c = { .tgid = bpf_get_current_pid_tgid() >> 32, .mode = WALK_GONE, .how = how,
			      .first = first, .end = last >= WALK_FDS_MAX ? WALK_FDS_MAX : last + 1 };
	table_of((struct task_struct *)bpf_get_current_task(), &c);
	walk(&c, loop);
	return 0;
}

static __always_inline int fork_body(struct task_struct *parent, struct task_struct *child, bool loop)
{
	/* A thread (or clone(CLONE_FILES)) shares its parent's table: nothing new. */
	if (BPF_CORE_READ(child, files) == BPF_CORE_READ(parent, files))
		return 0;
	struct walk_ctx c = { .tgid = BPF_CORE_READ(child, tgid), .mode = WALK_FORK, .first = 0,
			      .end = WALK_FDS_MAX };
	table_of(child, &c);
	walk(&c, loop);
	return 0;
}

static __always_inline int exit_body(struct task_struct *task, bool loop)
{
	/* The table goes with the process's last thread (signal->live reaches 0 as the last
	 * one starts exiting). */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	struct walk_ctx c = { .tgid = BPF_CORE_READ(task, tgid), .mode = WALK_EXIT, .how = CAP_CLOSE_EXIT,
			      .first = 0, .end = WALK_FDS_MAX };
	table_of(task, &c);
	walk(&c, loop);
	return 0;
}

/* Forks and exits come only in task context, so what the kernel's recursion guard skips
 * here is a call made while another task is preempted inside the program (7.x): a fork
 * whose child's descriptors go uncounted, or an exit whose files' rows wait for the
 * capture's end. Where the kernel preempts, each program has a spare that takes the
 * calls left unmarked (spare.bpf.h), as the exec probe's do; the loader loads none
 * elsewhere. */
#define FORK_ARGS struct task_struct *parent, struct task_struct *child
#define EXIT_ARGS struct task_struct *task

SPARED_TP(sched_process_fork, file_fork_loop, FORK_ARGS, fork_body(parent, child, true))
SPARED_TP(sched_process_fork, file_fork_noloop, FORK_ARGS, fork_body(parent, child, false))
SPARED_TP(sched_process_exit, file_exit_loop, EXIT_ARGS, exit_body(task, true))
SPARED_TP(sched_process_exit, file_exit_noloop, EXIT_ARGS, exit_body(task, false))

/* --- unlink, rename, truncate --- */

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
	b->f.path_len = path_len;
	__u32 off = path_len;
	if (op == CAP_FILE_RENAME) {
		b->f.flags = flags;
		b->f.path2_len = put_user_str(b, off, path2);
		off += b->f.path2_len;
	} else if (op == CAP_FILE_TRUNCATE) {
		b->f.length = flags;
	} else {
		b->f.flags = flags;
	}
	if (path_len && b->tail[0] != '/')
		b->f.cwd_len = put_dir(b, off, dfd);
	finish(b);
	return 0;
}

/* ftruncate: a row for a tracked file, named by its open record. */
static __always_inline int record_ftruncate(__s32 fd, __u64 length, long ret)
{
	__u64 fkey = (__u64)fd_file(fd);
	struct file_state *st = tracked(fkey);
	if (!st)
		return 0;
	struct file_buf *b = buf();
	if (!b)
		return 0;
	begin(&b->f, CAP_FILE_TRUNCATE);
	b->f.fd = fd;
	b->f.ret = ret;
	b->f.length = length;
	b->f.ino = st->ino;
	b->f.dev = st->dev;
	b->f.file_key = fkey;
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
	/* Every other field set, as a record the recorder decodes into a row: the buffer
	 * holds what the start-up scan left there (its paths' lengths). */
	begin_hdr(&b->f, op);
	if (op == CAP_FILE_CLOSE)
		b->f.how = CAP_CLOSE_CLOSE;
	b->f.fd = fd;
	b->f.ret = ret;
	submit(b, sizeof(b->f));
	return 0;
}

/* --- the syscalls --- */

/* One syscall's exit: `id` its number. From tp_btf/sys_exit (every syscall, `id` read
 * from the registers) or from an fexit program on one syscall's wrapper (`id` a constant:
 * the compiler keeps that syscall's case alone). */
static __always_inline int sys_exit_body(struct pt_regs *regs, long ret, long id, bool loop, bool fexit)
{
	if (cap_cfg.file_floor == CAP_FLOOR_HOOK)
		return 0;
	switch (id) {
	case NR_read:
	case NR_pread64:
	case NR_readv:
	case NR_preadv:
	case NR_preadv2:
	case NR_write:
	case NR_pwrite64:
	case NR_writev:
	case NR_pwritev:
	case NR_pwritev2:
	case NR_open:
	case NR_openat:
	case NR_openat2:
	case NR_close:
	case NR_unlink:
	case NR_unlinkat:
	case NR_rename:
	case NR_renameat:
	case NR_renameat2:
	case NR_dup:
	case NR_dup2:
	case NR_dup3:
	case NR_fcntl:
	case NR_sendfile:
	case NR_splice:
	case NR_copy_file_range:
	case NR_mmap:
	case NR_truncate:
	case NR_ftruncate:
	case NR_execve:
	case NR_execveat:
	case NR_close_range:
		break;
	default:
		return 0;
	}
	/* A 32-bit call reaches sys_exit but not the 64-bit wrappers fexit attaches to. */
	if (skip_current() || (!fexit && compat_syscall()))
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
	case NR_preadv:
	case NR_preadv2:
		return record_rw((__s32)ARG0(regs), ret, false);
	case NR_write:
	case NR_pwrite64:
	case NR_writev:
	case NR_pwritev:
	case NR_pwritev2:
		return record_rw((__s32)ARG0(regs), ret, true);
	case NR_sendfile:
		return record_copy((__s32)ARG1(regs), (__s32)ARG0(regs), ret);
	case NR_splice:
	case NR_copy_file_range:
		return record_copy((__s32)ARG0(regs), (__s32)ARG2(regs), ret);
	case NR_close:
		return record_close((__s32)ARG0(regs), ret);
	case NR_dup:
	case NR_dup2:
	case NR_dup3:
		return record_dup(ret);
	case NR_fcntl:
		if (ARG1(regs) == F_DUPFD || ARG1(regs) == F_DUPFD_CLOEXEC)
			return record_dup(ret);
		return 0;
	case NR_close_range:
		if (ret == 0 && !(ARG2(regs) & CLOSE_RANGE_CLOEXEC))
			return record_gone(ARG0(regs), ARG1(regs), CAP_CLOSE_CLOSE, loop);
		return 0;
	case NR_execve:
		if (ret == 0)
			return record_gone(0, WALK_FDS_MAX, CAP_CLOSE_EXEC, loop);
		return record_failed_exec((const char *)ARG0(regs), (const char *const *)ARG1(regs), ret);
	case NR_execveat:
		if (ret == 0)
			return record_gone(0, WALK_FDS_MAX, CAP_CLOSE_EXEC, loop);
		return record_failed_exec((const char *)ARG1(regs), (const char *const *)ARG2(regs), ret);
	case NR_mmap:
		return record_mmap(ret, ARG2(regs), ARG3(regs), (__s32)ARG4(regs));
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
	case NR_truncate:
		return record_path_op(CAP_FILE_TRUNCATE, ret, AT_FDCWD, (const char *)ARG0(regs), 0, ARG1(regs));
	case NR_ftruncate:
		return record_ftruncate((__s32)ARG0(regs), ARG1(regs), ret);
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(file_sys_exit_loop, struct pt_regs *regs, long ret)
{
	return PREEMPT_OFF(sys_exit_body(regs, ret, SYSCALL_NR(regs), true, false));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(file_sys_exit_noloop, struct pt_regs *regs, long ret)
{
	return PREEMPT_OFF(sys_exit_body(regs, ret, SYSCALL_NR(regs), false, false));
}

/* The syscalls where the kernel lets fexit programs load: one program per syscall, at
 * the exit of its wrapper (the loader names the target, `__x64_sys_<name>` or
 * `__arm64_sys_<name>`, from the program's name after `_fx_`). Other syscalls then pass
 * no program at all, and the syscall tracepoint stays off (with it on, every syscall of
 * every process leaves the kernel through the slow path). Each with its two spares
 * (spare.bpf.h), loaded only where the kernel preempts. */
#define FX_PAIR(prog, nr, loop) SPARED_FEXIT(prog, sys_exit_body(regs, ret, nr, loop, true))
#define FX(name, nr) FX_PAIR(file_fx_##name, nr, false)
#define FX_LOOP(name, nr)                                                        \
	FX_PAIR(file_fx_##name##_loop, nr, true)                                 \
	FX_PAIR(file_fx_##name##_noloop, nr, false)

FX(read, NR_read)
FX(pread64, NR_pread64)
FX(readv, NR_readv)
FX(preadv, NR_preadv)
FX(preadv2, NR_preadv2)
FX(write, NR_write)
FX(pwrite64, NR_pwrite64)
FX(writev, NR_writev)
FX(pwritev, NR_pwritev)
FX(pwritev2, NR_pwritev2)
FX(sendfile64, NR_sendfile)
FX(splice, NR_splice)
FX(copy_file_range, NR_copy_file_range)
FX(close, NR_close)
FX(dup, NR_dup)
FX(dup2, NR_dup2)
FX(dup3, NR_dup3)
FX(fcntl, NR_fcntl)
FX(mmap, NR_mmap)
FX(open, NR_open)
FX(openat, NR_openat)
FX(openat2, NR_openat2)
FX(unlink, NR_unlink)
FX(unlinkat, NR_unlinkat)
FX(rename, NR_rename)
FX(renameat, NR_renameat)
FX(renameat2, NR_renameat2)
FX(truncate, NR_truncate)
FX(ftruncate, NR_ftruncate)
FX_LOOP(close_range, NR_close_range)
FX_LOOP(execve, NR_execve)
FX_LOOP(execveat, NR_execveat)

/* --- what is open at start and at the end --- */

/* At start: the regular files every process holds, tracked from now on, each with an
 * open record (marked preexisting) written by the first process found holding it. */
SEC("iter/task_file")
int file_scan_start(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file || skip_task(task))
		return 0;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFREG)
		return 0;
	__u64 fkey = (__u64)file;
	__u64 key = fd_key_of(BPF_CORE_READ(task, tgid), ctx->fd);
	if (!scan_ns)
		scan_ns = bpf_ktime_get_ns();
	if (tracked(fkey)) {
		add_fd(key, fkey);
		return 0;
	}
	struct file_buf *b = buf();
	if (!b)
		return 0;
	__u32 len = put_path(b, 0, BPF_CORE_READ(file, f_path.mnt), BPF_CORE_READ(file, f_path.dentry));
	if (excluded(b, len))
		return 0;
	struct file_state st = { .nfds = 1, .fflags = CAP_FILE_PREEXISTING | SCAN_CLAIM, .gen = new_gen() };
	file_ids(file, &st);
	/* Claimed only if nobody has: an open in flight on another CPU that tracked it first
	 * (its state left there, even once closed) wrote its own row. */
	if (bpf_map_update_elem(&files, &fkey, &st, BPF_NOEXIST)) {
		if (tracked(fkey))
			add_fd(key, fkey);
		return 0;
	}
	set_fd(key, fkey, st.gen);
	fill_hdr_task(&b->f.hdr, CAP_KIND_FILE, task);
	begin_hdr(&b->f, CAP_FILE_OPEN);
	b->f.fd = ctx->fd;
	b->f.ret = ctx->fd;
	b->f.flags = BPF_CORE_READ(file, f_flags);
	b->f.ino = st.ino;
	b->f.dev = st.dev;
	b->f.file_key = fkey;
	b->f.fflags = CAP_FILE_PREEXISTING;
	b->f.path_len = len;
	finish(b);
	return 0;
}

/* At the end: a close record (CAP_CLOSE_END) with the sums so far for every tracked
 * file still open, written by the first process found holding it. */
SEC("iter/task_file")
int file_scan_end(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	__u64 fkey = (__u64)file;
	struct file_state *st = tracked(fkey);
	if (!st)
		return 0;
	st->nfds = 0;
	emit_close(st, fkey, ctx->fd, CAP_CLOSE_END, 0, task, 0);
	return 0;
}
