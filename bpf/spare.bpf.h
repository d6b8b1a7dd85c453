/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Spares for programs that run only in task context (the file and module probes' fexit
 * programs, the file probe's fork and exit walks, the net probe's net_send and net_recv,
 * the exec probe's handle_exec and handle_exit, the module probe's module_load and
 * module_free), on kernels that preempt tasks in kernel code.
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
 * So there each program proper has spares on the same function, attached before it (a
 * trampoline runs the programs last attached first; on a tracepoint, after it, as a
 * tracepoint calls its programs in the order they were attached), so the kernel calls
 * the program proper and then each spare for every call. (Tracepoints run their programs
 * so on 7.x too: a task preempted inside net_send left a connection's send unclaimed
 * and counted lost in one CI run.) A call's stage, in the task's storage (fx_done):
 *
 *   the program proper, as it begins:  FX_PROPER
 *   the first spare (<prog>_nested):   FX_PROPER: FX_FIRST; else takes the call, FX_FIRST
 *   the second (<prog>_nested2):       FX_PROPER or FX_FIRST: 0; else (0) takes it
 *
 * A stage a skipped spare leaves is one the next call's own programs tell apart: FX_FIRST
 * left by a skipped second spare is not FX_PROPER, so the first spare takes a call whose
 * program proper was skipped; FX_PROPER left by a skipped first spare the second clears.
 * With one spare (the first: net_send, net_recv, handle_exec, handle_exit, the file
 * probe's fork and exit walks, module_load, module_free) the stage
 * stays FX_FIRST between calls, and FX_PROPER left by a skipped spare makes the next call
 * look handled. Under four writers on two CPUs on 7.2 one spare lost 0 to 15 calls a run
 * (README, Known gaps): a call the spare was skipped for too, or one that found a skipped
 * spare's FX_PROPER.
 * Where the stage cannot be kept (the task's storage cannot be made: no memory, or another
 * task holds the storage lock on this CPU) it is kept in fx_unmarked on this CPU with the
 * thread's id. A spare counts what it takes in nested_taken (each call at most once: a
 * take leaves a stage the later spare passes); the recorder reports the programs'
 * recursion misses less that as lost. On kernels that cannot preempt a program the
 * loader loads no spare, and the marks are pruned with cap_cfg.preempt. The program
 * proper's body runs with preemption off (common.bpf.h), and so does a spare's for a call
 * it takes; its common path (a stage passed on) leaves preemption alone.
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

/* A call's stage where the task's storage cannot be made: the thread and its stage. */
struct fx_slot {
	__u64 tid;
	__u32 stage;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fx_slot);
} fx_unmarked SEC(".maps");

/* 1 once every program proper is attached (on a trampoline the spares attach first): until
 * then, and after the loader disarms it to detach, a spare takes every call of its
 * function, without counting it as a skipped one taken. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} fx_armed SEC(".maps");

#define FX_PROPER 1
#define FX_FIRST 2

/* This task's stage: in its storage (made if `create`), else in this CPU's slot where
 * the slot is the thread's (or is made so, if `create`); NULL where there is none. */
static __always_inline __u32 *fx_stage(bool create)
{
	__u32 *stage = bpf_task_storage_get(&fx_done, bpf_get_current_task_btf(), 0,
					     create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (stage)
		return stage;
	__u32 zero = 0;
	struct fx_slot *slot = bpf_map_lookup_elem(&fx_unmarked, &zero);
	if (!slot)
		return NULL;
	__u64 tid = bpf_get_current_pid_tgid();
	if (slot->tid != tid) {
		if (!create)
			return NULL;
		slot->tid = tid;
		slot->stage = 0;
	}
	return &slot->stage;
}

/* The program proper, as it begins: this task's call is handled. */
static __always_inline void fx_begin(void)
{
	if (!(cap_cfg.preempt & CAP_PREEMPT_SPARES))
		return;
	__u32 *stage = fx_stage(true);
	if (stage)
		*stage = FX_PROPER;
}

/* A call a spare takes: counted once every program proper is attached. */
static __always_inline bool fx_taken(void)
{
	__u32 zero = 0;
	__u32 *armed = bpf_map_lookup_elem(&fx_armed, &zero);
	__u64 *taken = bpf_map_lookup_elem(&nested_taken, &zero);
	if (armed && *armed && taken)
		__sync_fetch_and_add(taken, 1);
	return true;
}

/* The first spare: whether this call is one the program proper skipped. */
static __always_inline bool fx_spare_takes(void)
{
	__u32 *stage = fx_stage(false);
	if (stage && *stage == FX_PROPER) {
		*stage = FX_FIRST;
		return false;
	}
	stage = stage ?: fx_stage(true);
	if (stage)
		*stage = FX_FIRST;
	return fx_taken();
}

/* The second spare: whether this call is one the program proper and the first spare
 * both skipped. */
static __always_inline bool fx_spare2_takes(void)
{
	__u32 *stage = fx_stage(false);
	if (stage && (*stage == FX_PROPER || *stage == FX_FIRST)) {
		*stage = 0;
		return false;
	}
	if (stage)
		*stage = 0;
	return fx_taken();
}

/* A tracepoint program proper, `name` on tp_btf/`tp`, and its one spare (`<name>_nested`):
 * `args` are the tracepoint's arguments, `call` the body called with them, run with
 * preemption off. The spare's common path (a call its program proper marked) leaves
 * preemption alone. */
#define SPARED_TP(tp, name, args, call)                                          \
	SEC("tp_btf/" #tp)                                                       \
	int BPF_PROG(name, args)                                                 \
	{                                                                        \
		fx_begin();                                                      \
		return PREEMPT_OFF(call);                                        \
	}                                                                        \
	SEC("tp_btf/" #tp)                                                       \
	int BPF_PROG(name##_nested, args)                                        \
	{                                                                        \
		if (!fx_spare_takes())                                           \
			return 0;                                                \
		return PREEMPT_OFF(call);                                        \
	}

/* One spare of an fexit program on a syscall's wrapper, taking the calls `takes` says. Its
 * common path leaves preemption alone, so that a reschedule put off until preemption is
 * back on (which keeps the kernel counting the program running) comes there only after a
 * call it took. */
#define SPARED_FEXIT_SPARE(name, takes, call)                                    \
	SEC("fexit")                                                             \
	int BPF_PROG(name, struct pt_regs *regs, long ret)                       \
	{                                                                        \
		if (!takes())                                                    \
			return 0;                                                \
		return PREEMPT_OFF(call);                                        \
	}

/* An fexit program proper on a syscall's wrapper, `prog` (the loader names the target from
 * what follows `_fx_`), and its two spares (`<prog>_nested`, `<prog>_nested2`): `call` is
 * the body, with the wrapper's `regs` and `ret`, run with preemption off. */
#define SPARED_FEXIT(prog, call)                                                 \
	SEC("fexit")                                                             \
	int BPF_PROG(prog, struct pt_regs *regs, long ret)                       \
	{                                                                        \
		fx_begin();                                                      \
		return PREEMPT_OFF(call);                                        \
	}                                                                        \
	SPARED_FEXIT_SPARE(prog##_nested, fx_spare_takes, call)                  \
	SPARED_FEXIT_SPARE(prog##_nested2, fx_spare2_takes, call)

#endif
