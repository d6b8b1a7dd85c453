// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * exec_provenance: one record per exec (path, full argv and envp from the new mm, the
 * executable file that ran, ids, namespaces, tty) and one per process exit (thread-group
 * leaders).
 *
 * Hooks: tp_btf/sched_process_exec and tp_btf/sched_process_exit (BTF raw tracepoints:
 * typed arguments, no kprobes needed). Failed execs fire neither: the file probe's
 * tp_btf/sys_exit program writes their records (record_failed_exec in exec.bpf.h), so
 * no second program runs on every syscall. Where the kernel preempts tasks in kernel
 * code, each program has a spare (`<name>_nested`, spare.bpf.h).
 */
#include "common.bpf.h"
#include "path.bpf.h"
#include "exec.bpf.h"
#include "spare.bpf.h"

static __always_inline __u64 span(unsigned long start, unsigned long end)
{
	return end > start ? end - start : 0;
}

static __always_inline int handle_exec_body(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (skip_current())
		return 0;
	__u32 cpu = bpf_get_smp_processor_id();
	struct exec_buf *b = bpf_map_lookup_elem(&exec_scratch, &cpu);
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

/* Execs and exits come only in task context, so what the kernel's recursion guard skips
 * here is a call made while another task is preempted inside the program (7.x). Where
 * the kernel preempts, each has a spare that takes the calls left unmarked
 * (spare.bpf.h); the loader loads none elsewhere. */
#define EXEC_ARGS struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm
SPARED_TP(sched_process_exec, handle_exec, EXEC_ARGS, handle_exec_body(p, old_pid, bprm))

static __always_inline int handle_exit_body(struct task_struct *p)
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

SPARED_TP(sched_process_exit, handle_exit, struct task_struct *p, handle_exit_body(p))
