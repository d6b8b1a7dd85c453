/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every probe shares: configuration set by the loader before load (read-only data),
 * the ring buffers, the drop counters, the filters, and the record header.
 */
#ifndef CAPTURE_COMMON_BPF_H
#define CAPTURE_COMMON_BPF_H

#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Every record type, so each object's BTF describes the whole ABI and a test can compare
 * it with the Rust mirror (schemas/src/abi.rs). */
struct cap_exec *_abi_exec;
struct cap_exit *_abi_exit;
struct cap_file *_abi_file;
struct cap_net *_abi_net;
struct cap_dns *_abi_dns;
struct cap_module *_abi_module;
struct cap_drops *_abi_drops;
struct cap_config *_abi_config;
struct cap_endpoint *_abi_endpoint;

/* Set by the loader before load (struct cap_config in events.h): in a section of its own,
 * so the loader finds it by name in every object, and read-only once loaded, so the
 * verifier prunes the code a setting switches off. */
const volatile struct cap_config cap_cfg SEC(".rodata.cap_cfg") = {
	.nr_rings = 1,
	.wakeup_bytes_cpu = 1 << 20,
	.args_max = CAP_ARGS_MAX_MIN,
};

/* Where the kernel preempts tasks in kernel code (preemption model full, lazy or rt;
 * Debian's 7.x) it can preempt one inside a BPF program: 7.x runs tracepoints' programs,
 * and BPF trampolines theirs, with migration disabled but preemption on. Another task
 * then running a program of the probe on that CPU would write its record into the same
 * per-CPU scratch buffer (rows mixed between tasks: seen on 7.2), and the kernel skips
 * the same program for it (its recursion guard). So there every program's body runs
 * with preemption off (the loader sets CAP_PREEMPT_OFF where the kernel has the kfuncs,
 * 6.10 and later); the kernel can still preempt the task in the few instructions around
 * the body, and at its end (a reschedule asked for while preemption was off), where the
 * spares take what the kernel skips (net_flow.bpf.c, spare.bpf.h). Pruned elsewhere. */
extern void bpf_preempt_disable(void) __ksym __weak;
extern void bpf_preempt_enable(void) __ksym __weak;

static __always_inline void preempt_off(void)
{
	if ((cap_cfg.preempt & CAP_PREEMPT_OFF) && bpf_ksym_exists(bpf_preempt_disable))
		bpf_preempt_disable();
}

static __always_inline void preempt_on(void)
{
	if ((cap_cfg.preempt & CAP_PREEMPT_OFF) && bpf_ksym_exists(bpf_preempt_enable))
		bpf_preempt_enable();
}

/* A program's body, `expr`, between the two; its value. */
#define PREEMPT_OFF(expr)                                                        \
	({                                                                       \
		preempt_off();                                                   \
		int __r = (expr);                                                \
		preempt_on();                                                    \
		__r;                                                             \
	})

/* What a probe's spare programs took of the calls the kernel skipped in their programs
 * proper (net_flow.bpf.c's net_state_nested, spare.bpf.h's spares): the recorder
 * subtracts it from those programs' recursion misses. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nested_taken SEC(".maps");

/* Ring buffers: one per CPU (CPU number modulo cap_cfg.nr_rings), so CPUs do not contend
 * for one ring's lock and producer position. The loader sets nr_rings (a power of two, at
 * most CAP_RINGS_MAX) and the sizes; rings past nr_rings get one page. The reader merges the
 * rings in time order. Eight maps and a switch, not a map of maps: ring buffers as inner
 * maps are not in every kernel this supports. */

#define RING(name)                                      \
	struct {                                        \
		__uint(type, BPF_MAP_TYPE_RINGBUF);     \
		__uint(max_entries, 4096);              \
	} name SEC(".maps")
RING(ring0);
RING(ring1);
RING(ring2);
RING(ring3);
RING(ring4);
RING(ring5);
RING(ring6);
RING(ring7);

/* Records submitted and dropped, per CPU (ring buffers count no drops themselves). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cap_drops);
} drops SEC(".maps");

/* Command names to record when cap_cfg.filter_comm_on. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CAP_COMMS_MAX);
	__type(key, char[16]);
	__type(value, __u8);
} comm_filter SEC(".maps");

static __always_inline void count_drop(__u32 cause)
{
	__u32 zero = 0;
	struct cap_drops *d = bpf_map_lookup_elem(&drops, &zero);
	if (d)
		d->dropped[cause & (CAP_DROP_CAUSES - 1)]++;
}

/* The filters on a process id: the recorder itself, and --pid. */
static __always_inline bool skip_tgid(__u32 tgid)
{
	return tgid == cap_cfg.self_tgid || (cap_cfg.filter_pid && tgid != cap_cfg.filter_pid);
}

/* True when the current task is not to be recorded: the recorder itself, or outside the
 * pid and comm filters. Cheap checks first: this runs on every hooked syscall. */
static __always_inline bool skip_current(void)
{
	if (skip_tgid(bpf_get_current_pid_tgid() >> 32))
		return true;
	if (cap_cfg.filter_comm_on) {
		char comm[16] = {};
		bpf_get_current_comm(comm, sizeof(comm));
		return !bpf_map_lookup_elem(&comm_filter, comm);
	}
	return false;
}

/* Whether this kernel has bpf_get_current_task_btf (5.11+): a task pointer the program
 * reads with plain loads, instead of one bpf_probe_read_kernel call per field. */
#define HAVE_TASK_BTF bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

/* The header of a record about the current task. parent_start_ns is left 0: only exec
 * records need it (for parent_exec_id), and they fill it in themselves. */
static __always_inline void fill_hdr(struct cap_hdr *h, __u16 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	h->kind = kind;
	h->abi = CAP_ABI_VERSION;
	h->ktime_ns = bpf_ktime_get_boot_ns();
	if (HAVE_TASK_BTF) {
		struct task_struct *t = bpf_get_current_task_btf();
		h->start_ns = t->group_leader->start_boottime;
		h->ppid = t->real_parent->tgid;
	} else {
		struct task_struct *t = (struct task_struct *)bpf_get_current_task();
		h->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
		h->ppid = BPF_CORE_READ(t, real_parent, tgid);
	}
	h->parent_start_ns = 0;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->uid = (__u32)ugid;
	h->gid = ugid >> 32;
	h->_pad0 = 0;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* The header of a record about `t`, a task other than the current one (an iterator's):
 * what fill_hdr reads from the current task, read through the task pointer. */
static __always_inline void fill_hdr_task(struct cap_hdr *h, __u16 kind, struct task_struct *t)
{
	h->kind = kind;
	h->abi = CAP_ABI_VERSION;
	h->ktime_ns = bpf_ktime_get_boot_ns();
	h->start_ns = BPF_CORE_READ(t, group_leader, start_boottime);
	h->parent_start_ns = 0;
	h->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	h->pid = BPF_CORE_READ(t, tgid);
	h->tid = BPF_CORE_READ(t, pid);
	h->ppid = BPF_CORE_READ(t, real_parent, tgid);
	h->uid = BPF_CORE_READ(t, cred, uid.val);
	h->gid = BPF_CORE_READ(t, cred, gid.val);
	h->_pad0 = 0;
	BPF_CORE_READ_STR_INTO(&h->comm, t, comm);
}

/* The current task through its pointer, for the program types (cgroup hooks) that older
 * kernels do not let call bpf_get_current_pid_tgid, _uid_gid or _comm (6.1 does not):
 * bpf_get_current_task is theirs wherever the loader has CAP_PERFMON. */
static __always_inline struct task_struct *current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/* skip_current(), for a task through its pointer (cgroup hooks, iterators). */
static __always_inline bool skip_task(struct task_struct *t)
{
	if (skip_tgid(BPF_CORE_READ(t, tgid)))
		return true;
	if (cap_cfg.filter_comm_on) {
		char comm[16] = {};
		BPF_CORE_READ_STR_INTO(&comm, t, comm);
		return !bpf_map_lookup_elem(&comm_filter, comm);
	}
	return false;
}

/* Copies a finished record into this CPU's ring buffer. Records are written without
 * waking the reader; each CPU forces one wake-up once it has written cap_cfg.wakeup_bytes_cpu (the
 * loader's --wakeup-bytes divided among the CPUs, at least 16 KiB) since its last one, so
 * no more than --wakeup-bytes (or 16 KiB per CPU, where that is more) wait unannounced,
 * and the reader's poll timer picks up the rest.
 * The count is per CPU on purpose. Asking the ring how much is waiting
 * (bpf_ringbuf_query) read the consumer position, which libbpf's reader wrote after every
 * record, and once the threshold was crossed every record until the reader caught up
 * forced a wake-up: an irq_work self-IPI, which in a VM is an exit to the hypervisor.
 * Measured on the open storm: the probe's run time fell from 184 to 160 ns (1 worker) and
 * from 304 to 235 ns (2 workers). */
static __noinline long ring_output(void *rec, __u64 len, __u64 flags)
{
	switch (bpf_get_smp_processor_id() & (cap_cfg.nr_rings - 1) & (CAP_RINGS_MAX - 1)) {
	case 0: return bpf_ringbuf_output(&ring0, rec, len, flags);
	case 1: return bpf_ringbuf_output(&ring1, rec, len, flags);
	case 2: return bpf_ringbuf_output(&ring2, rec, len, flags);
	case 3: return bpf_ringbuf_output(&ring3, rec, len, flags);
	case 4: return bpf_ringbuf_output(&ring4, rec, len, flags);
	case 5: return bpf_ringbuf_output(&ring5, rec, len, flags);
	case 6: return bpf_ringbuf_output(&ring6, rec, len, flags);
	default: return bpf_ringbuf_output(&ring7, rec, len, flags);
	}
}

static __always_inline void submit(void *rec, __u64 len)
{
	__u32 zero = 0;
	struct cap_drops *d = bpf_map_lookup_elem(&drops, &zero);
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (d && d->unsignalled + len >= cap_cfg.wakeup_bytes_cpu)
		flags = BPF_RB_FORCE_WAKEUP;
	if (ring_output(rec, len, flags)) {
		count_drop(CAP_DROP_RINGBUF_FULL);
		return;
	}
	if (d) {
		d->submitted++;
		d->unsignalled = flags == BPF_RB_FORCE_WAKEUP ? 0 : d->unsignalled + len;
	}
}

#endif /* CAPTURE_COMMON_BPF_H */
