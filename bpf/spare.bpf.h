/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Spares for programs that run only in task context (the file probe's fexit programs, the
 * net probe's net_send and net_recv), on kernels that preempt tasks in kernel code.
 *
 * A BPF trampoline runs its program with migration disabled, not preemption, and skips
 * the program for any task that reaches it on a CPU where another task is still inside
 * it (the kernel's recursion guard, counted only in the program's recursion misses). On a
 * kernel that preempts tasks in kernel code (preemption model full, lazy or rt; Debian's
 * 7.x is lazy) a task preempted inside file_fx_close leaves the next close on that CPU
 * unrecorded: under qemu, 4 of 9 runs of scripts/test-kernels.sh on 7.2 lost a call so.
 * The raw tracepoint sys_exit is no way out there: 7.x runs its programs with migration
 * disabled too, and one program for every syscall skipped 21 and 9 calls in two runs,
 * where fexit skipped none or one.
 *
 * So there each program proper has a spare on the same function, attached before it
 * (a trampoline runs the programs last attached first; on a tracepoint, after it, as a
 * tracepoint calls its programs in the order they were attached), so the kernel calls
 * the program proper and then the spare for every call. (Tracepoints run their programs
 * so on 7.x too: a task preempted inside net_send left a connection's send unclaimed
 * and counted lost in one CI run.) The program proper marks the call handled in
 * the task's storage (fx_done) as it begins; the spare takes a call that is not marked
 * (the kernel skipped the program proper) and clears the mark of one that is. Where the
 * mark cannot be made (the task's storage cannot be made on its first call: no memory,
 * or another task holds the storage lock on this CPU) the program proper leaves its
 * thread's id in fx_unmarked on this CPU instead, which the spare also reads. The spare
 * counts what it takes in nested_taken; the recorder reports the programs' recursion
 * misses less that as lost (a call skipped by both; or one whose mark a skipped spare
 * left, which the next skipped call finds). On kernels that cannot preempt a program
 * the loader loads no spare, and the marks are pruned with cap_cfg.preempt. The program
 * proper's body runs with preemption off (common.bpf.h), and so does a spare's for a call
 * it takes; its common path (a mark found and cleared) leaves preemption alone.
 */
#ifndef CAPTURE_SPARE_BPF_H
#define CAPTURE_SPARE_BPF_H

#include "common.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} fx_done SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} fx_unmarked SEC(".maps");

/* 1 once every program proper is attached (the loader attaches the spares first): until
 * then, and after the loader disarms it to detach, a spare takes every call of its
 * function, without counting it as a skipped one taken. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fx_armed SEC(".maps");

/* The program proper, as it begins: this task's call is handled. */
static __always_inline void fx_begin(void)
{
	if (!(cap_cfg.preempt & CAP_PREEMPT_SPARES))
		return;
	__u32 *done = bpf_task_storage_get(&fx_done, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (done) {
		*done = 1;
		return;
	}
	__u32 zero = 0;
	__u64 *unmarked = bpf_map_lookup_elem(&fx_unmarked, &zero);
	if (unmarked)
		*unmarked = bpf_get_current_pid_tgid();
}

/* The spare: whether this call is one the program proper skipped (then it is counted as
 * taken); clears the mark of one it handled. */
static __always_inline bool fx_spare_takes(void)
{
	__u32 *done = bpf_task_storage_get(&fx_done, bpf_get_current_task_btf(), 0, 0);
	if (done && *done) {
		*done = 0;
		return false;
	}
	__u32 zero = 0;
	__u64 *unmarked = bpf_map_lookup_elem(&fx_unmarked, &zero);
	if (unmarked && *unmarked == bpf_get_current_pid_tgid()) {
		*unmarked = 0;
		return false;
	}
	__u32 *armed = bpf_map_lookup_elem(&fx_armed, &zero);
	__u64 *taken = bpf_map_lookup_elem(&nested_taken, &zero);
	if (armed && *armed && taken)
		__sync_fetch_and_add(taken, 1);
	return true;
}

#endif
