/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Exec records: the buffer they are assembled in and the fields every one takes from
 * the task. Shared by exec_provenance (execs that succeed) and file_ops (execs that fail,
 * seen at the syscall's exit).
 */
#ifndef CAPTURE_EXEC_BPF_H
#define CAPTURE_EXEC_BPF_H

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
} exec_scratch SEC(".maps");

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

/* A failed execve or execveat: no sched tracepoint fires, and the caller's memory still
 * holds what it asked for. The file probe's tp_btf/sys_exit program calls this (it sees
 * every syscall return already, so failed execs cost no program of their own): the path
 * and argv are read from the caller's memory (argv string by string, at most
 * FAILED_ARGS_MAX of them, within --argv-max-bytes); envp is not read. */
static __noinline __attribute__((unused)) int record_failed_exec(const char *path, const char *const *argv, long ret)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_buf *b = bpf_map_lookup_elem(&exec_scratch, &cpu);
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

#endif /* CAPTURE_EXEC_BPF_H */
