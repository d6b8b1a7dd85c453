// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * exec_provenance: one record per exec (path, full argv and envp from the new mm, ids,
 * namespaces, tty) and one per process exit (thread-group leaders).
 *
 * Hooks: tp_btf/sched_process_exec and tp_btf/sched_process_exit (BTF raw tracepoints:
 * typed arguments, no kprobes needed).
 */
#include "common.bpf.h"

/* The verifier bounds every copy by these masks; the clamps to cap_cfg.args_max come first. */
#define PATH_MASK (CAP_PATH_MAX - 1)
#define ARGS_MASK (2 * CAP_ARGS_MAX_MAX - 1)

/* A record is assembled here, then copied into the ring buffer (records vary in size up
 * to a quarter MiB, so they cannot be reserved in place). One slot per CPU. */
struct exec_buf {
	struct cap_exec e;
	__u8 tail[CAP_PATH_MAX + 2 * (ARGS_MASK + 1)];
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

	__u64 max = cap_cfg.args_max; /* --argv-max-bytes */
	if (max > CAP_ARGS_MAX_MAX)
		max = CAP_ARGS_MAX_MAX;
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

	e->euid = BPF_CORE_READ(p, cred, euid.val);
	e->loginuid = bpf_core_field_exists(p->loginuid) ? BPF_CORE_READ(p, loginuid.val) : 0xffffffff;
	e->flags = flags;
	e->argc = BPF_CORE_READ(bprm, argc);
	e->envc = BPF_CORE_READ(bprm, envc);
	e->path_len = path_len;
	e->argv_len = argv_len;
	e->envp_len = envp_len;
	e->pidns = BPF_CORE_READ(p, nsproxy, pid_ns_for_children, ns.inum);
	e->mntns = BPF_CORE_READ(p, nsproxy, mnt_ns, ns.inum);
	e->netns = BPF_CORE_READ(p, nsproxy, net_ns, ns.inum);
	e->_pad0 = 0;
	e->tty[0] = 0;
	struct tty_struct *tty = BPF_CORE_READ(p, signal, tty);
	if (tty)
		bpf_probe_read_kernel_str(e->tty, sizeof(e->tty), &tty->name);

	__u64 len = sizeof(*e) + off + envp_len;
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
