// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * exec_provenance: one record per exec (path, full argv and envp from the new mm, the
 * executable file that ran, ids, namespaces, tty), one per failed exec (the path and argv
 * asked for, and the error), and one per process exit (thread-group leaders).
 *
 * Hooks: tp_btf/sched_process_exec and tp_btf/sched_process_exit (BTF raw tracepoints:
 * typed arguments, no kprobes needed); the syscall tracepoints of execve and execveat
 * for the execs that fail (below).
 */
#include "common.bpf.h"
#include "path.bpf.h"

/* The verifier bounds every copy by these masks; the clamps to cap_cfg.args_max come first. */
#define ARGS_MASK (2 * CAP_ARGS_MAX_MAX - 1)
/* A failed exec's argv is read pointer by pointer from the caller's memory: at most this
 * many strings. */
#define FAILED_ARGS_MAX 64

/* A record is assembled here, then copied into the ring buffer (records vary in size up
 * to a quarter MiB, so they cannot be reserved in place). One slot per CPU. */
struct exec_buf {
	struct cap_exec e;
	__u8 tail[2 * CAP_PATH_MAX + 2 * (ARGS_MASK + 1)];
	struct path_walk w;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* the loader sets the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct exec_buf);
} scratch SEC(".maps");

static __always_inline __u64 span(unsigned long start, unsigned long end)
{
	return end > start ? end - start : 0;
}

/* --argv-max-bytes, within what the buffer holds. */
static __always_inline __u64 args_max(void)
{
	__u64 max = cap_cfg.args_max;
	return max > CAP_ARGS_MAX_MAX ? CAP_ARGS_MAX_MAX : max;
}

/* What every exec record takes from the task: ids, namespaces, tty. */
static __always_inline void task_fields(struct cap_exec *e, struct task_struct *p)
{
	e->euid = BPF_CORE_READ(p, cred, euid.val);
	e->loginuid = bpf_core_field_exists(p->loginuid) ? BPF_CORE_READ(p, loginuid.val) : 0xffffffff;
	e->pidns = BPF_CORE_READ(p, nsproxy, pid_ns_for_children, ns.inum);
	e->mntns = BPF_CORE_READ(p, nsproxy, mnt_ns, ns.inum);
	e->netns = BPF_CORE_READ(p, nsproxy, net_ns, ns.inum);
	e->_pad0 = 0;
	e->tty[0] = 0;
	struct tty_struct *tty = BPF_CORE_READ(p, signal, tty);
	if (tty)
		bpf_probe_read_kernel_str(e->tty, sizeof(e->tty), &tty->name);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (skip_current())
		return 0;
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_buf *b = bpf_map_lookup_elem(&scratch, &cpu);
	if (!b)
		return 0;
	struct cap_exec *e = &b->e;
	fill_hdr(&e->hdr, CAP_KIND_EXEC);
	e->hdr.parent_start_ns = BPF_CORE_READ(p, real_parent, group_leader, start_boottime);
	__u32 flags = 0;

	long n = bpf_probe_read_kernel_str(b->tail, CAP_PATH_MAX, BPF_CORE_READ(bprm, filename));
	__u32 path_len = n > 0 ? n - 1 : 0;
	if (n == CAP_PATH_MAX)
		flags |= CAP_EXEC_PATH_TRUNCATED;
	path_len &= PATH_MASK;

	__u64 max = args_max();
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	__u64 argv_len = span(BPF_CORE_READ(mm, arg_start), BPF_CORE_READ(mm, arg_end));
	if (argv_len > max) {
		argv_len = max;
		flags |= CAP_EXEC_ARGV_TRUNCATED;
	}
	argv_len &= ARGS_MASK;
	if (bpf_probe_read_user(b->tail + path_len, argv_len, (void *)BPF_CORE_READ(mm, arg_start))) {
		count_drop(CAP_DROP_READ_FAILED);
		argv_len = 0;
		flags |= CAP_EXEC_ARGV_TRUNCATED;
	}

	__u64 envp_len = span(BPF_CORE_READ(mm, env_start), BPF_CORE_READ(mm, env_end));
	if (envp_len > max) {
		envp_len = max;
		flags |= CAP_EXEC_ENVP_TRUNCATED;
	}
	envp_len &= ARGS_MASK;
	__u64 off = path_len + argv_len; /* each part is bounded above */
	if (bpf_probe_read_user(b->tail + off, envp_len, (void *)BPF_CORE_READ(mm, env_start))) {
		count_drop(CAP_DROP_READ_FAILED);
		envp_len = 0;
		flags |= CAP_EXEC_ENVP_TRUNCATED;
	}
	/* The file that runs, resolved: what fexecve, execveat and symlinks lead to. */
	struct file *exe = BPF_CORE_READ(bprm, file);
	e->exe_len = exe ? copy_path(&b->w, (char *)b->tail + off + envp_len, BPF_CORE_READ(exe, f_path.mnt),
				     BPF_CORE_READ(exe, f_path.dentry))
			 : 0;

	task_fields(e, p);
	e->flags = flags;
	e->argc = BPF_CORE_READ(bprm, argc);
	e->envc = BPF_CORE_READ(bprm, envc);
	e->path_len = path_len;
	e->argv_len = argv_len;
	e->envp_len = envp_len;
	e->ret = 0;

	__u64 len = sizeof(*e) + off + envp_len + e->exe_len;
	e->hdr.len = len;
	if (len <= sizeof(*b))
		submit(b, len);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p)
{
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0; /* a thread, not the process */
	if (skip_current())
		return 0;
	struct cap_exit x = {};
	fill_hdr(&x.hdr, CAP_KIND_EXIT);
	x.hdr.len = sizeof(x);
	x.exit_status = BPF_CORE_READ(p, exit_code);
	submit(&x, sizeof(x));
	return 0;
}

/* Failed execs: no sched tracepoint fires, so the syscall tracepoints of execve and
 * execveat do it (they cost nothing to other syscalls beyond a bit test, and their args
 * come in the context): at entry the path and argv pointers are kept by thread; at exit,
 * a failure writes its record from the caller's memory, which still holds them. Their
 * context is the tracepoint format (trace_entry, the syscall number, then the arguments
 * or the result), the same on every kernel. */
struct sys_enter_ctx {
	__u64 ent;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

struct sys_exit_ctx {
	__u64 ent;
	__s32 nr;
	__u32 _pad;
	__s64 ret;
};

struct exec_args {
	__u64 path;
	__u64 argv;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct exec_args);
} exec_args SEC(".maps");

static __always_inline int exec_enter(__u64 path, __u64 argv)
{
	__u32 tid = bpf_get_current_pid_tgid();
	struct exec_args a = { .path = path, .argv = argv };
	bpf_map_update_elem(&exec_args, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int exec_enter_execve(struct sys_enter_ctx *ctx)
{
	return exec_enter(ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int exec_enter_execveat(struct sys_enter_ctx *ctx)
{
	return exec_enter(ctx->args[1], ctx->args[2]);
}

static __always_inline int exec_exit(long ret)
{
	__u32 tid = bpf_get_current_pid_tgid();
	struct exec_args *a = bpf_map_lookup_elem(&exec_args, &tid);
	if (!a)
		return 0;
	const char *path = (const char *)a->path;
	const char *const *argv = (const char *const *)a->argv;
	bpf_map_delete_elem(&exec_args, &tid);
	if (ret >= 0 || skip_current())
		return 0;
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_buf *b = bpf_map_lookup_elem(&scratch, &cpu);
	if (!b)
		return 0;
	struct task_struct *p = (struct task_struct *)bpf_get_current_task();
	struct cap_exec *e = &b->e;
	fill_hdr(&e->hdr, CAP_KIND_EXEC);
	e->hdr.parent_start_ns = BPF_CORE_READ(p, real_parent, group_leader, start_boottime);
	__u32 flags = CAP_EXEC_FAILED;

	long n = bpf_probe_read_user_str(b->tail, CAP_PATH_MAX, path);
	__u32 path_len = n > 0 ? n - 1 : 0;
	if (n == CAP_PATH_MAX)
		flags |= CAP_EXEC_PATH_TRUNCATED;
	path_len &= PATH_MASK;

	__u64 max = args_max();
	__u64 argv_len = 0;
	__u32 argc = 0;
	for (__u32 i = 0; i < FAILED_ARGS_MAX; i++) {
		const char *arg = 0;
		if (!argv || bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		if (argv_len >= max) {
			flags |= CAP_EXEC_ARGV_TRUNCATED;
			break;
		}
		__u64 room = (max - argv_len) & ARGS_MASK;
		long got = bpf_probe_read_user_str(b->tail + path_len + (argv_len & ARGS_MASK), room, arg);
		if (got <= 0)
			break;
		argv_len += got;
		argc++;
		if (got == room) {
			flags |= CAP_EXEC_ARGV_TRUNCATED; /* cut: room - 1 bytes and a NUL */
			break;
		}
		if (i == FAILED_ARGS_MAX - 1) {
			const char *more = 0;
			if (!bpf_probe_read_user(&more, sizeof(more), &argv[i + 1]) && more)
				flags |= CAP_EXEC_ARGV_TRUNCATED;
		}
	}
	argv_len &= ARGS_MASK;

	task_fields(e, p);
	e->flags = flags;
	e->argc = argc;
	e->envc = 0;
	e->path_len = path_len;
	e->argv_len = argv_len;
	e->envp_len = 0;
	e->exe_len = 0;
	e->ret = ret;

	__u64 len = sizeof(*e) + path_len + argv_len;
	e->hdr.len = len;
	if (len <= sizeof(*b))
		submit(b, len);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int exec_exit_execve(struct sys_exit_ctx *ctx)
{
	return exec_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int exec_exit_execveat(struct sys_exit_ctx *ctx)
{
	return exec_exit(ctx->ret);
}
