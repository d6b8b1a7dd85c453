// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * module_load: kernel module loads and unloads, one record per init_module(2),
 * finit_module(2) or delete_module(2) call, failed calls too.
 *
 * Hooks:
 * - tp_btf/module_load and tp_btf/module_free (the kernel's module:module_load and
 *   module:module_free) run in the task whose call loads or unloads the module (a module
 *   whose init fails is freed inside the load call): they note the module's name and taint
 *   for that thread.
 * - tp_btf/sys_exit writes the record when the call returns: its arguments (still in the
 *   saved registers), its result, and what was noted. Every other syscall costs one
 *   comparison of its number here. Where the kernel lets fexit programs load, fexit on
 *   the three syscalls' wrappers does the same and no other syscall passes a program
 *   (the loader chooses, `--syscall-hook`).
 * Every module load and unload goes through these calls, including the kernel's own
 * requests (request_module runs modprobe, which calls finit_module).
 * A load the kernel refuses before it has read the module's name (EEXIST, EPERM, ENOEXEC,
 * a bad signature) has no name: its path (finit_module) says which file it was.
 * Kernels without module support have neither tracepoint: the loader then reports the
 * probe unavailable.
 */
#include "common.bpf.h"
#include "path.bpf.h"
#include "spare.bpf.h"
#include "syscall.bpf.h"

/* Syscall numbers (asm/unistd.h). */
#if defined(__TARGET_ARCH_x86)
#define NR_init_module 175
#define NR_delete_module 176
#define NR_finit_module 313
#elif defined(__TARGET_ARCH_arm64)
#define NR_init_module 105
#define NR_delete_module 106
#define NR_finit_module 273
#endif

#define NAME_MASK (CAP_MODULE_NAME_MAX - 1)
#define TAIL_MASK (2 * CAP_PATH_MAX - 1)

/* What the module tracepoints saw during a call, by thread, until the call's exit takes
 * it. LRU: a note whose exit was not seen (the recorder started in between) ages out. */
struct note {
	__u64 taints;
	__u32 status; /* CAP_MODULE_LOADED | CAP_MODULE_FREED */
	__u32 name_len;
	char name[CAP_MODULE_NAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct note);
} notes SEC(".maps");

/* A record is assembled here: the fixed part, then name (at most CAP_MODULE_NAME_MAX - 1
 * bytes), path and params. One slot per CPU. */
struct module_buf {
	struct cap_module m; /* the record is m and the tail, contiguous */
	char tail[2 * CAP_PATH_MAX + CAP_MODULE_PARAMS_MAX];
	struct path_walk w;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* the loader sets the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct module_buf);
} scratch SEC(".maps");

static __always_inline int note(struct module *mod, __u32 what)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct note *n = bpf_map_lookup_elem(&notes, &tid);
	if (!n) {
		struct note fresh = {};
		bpf_map_update_elem(&notes, &tid, &fresh, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&notes, &tid);
		if (!n) {
			count_drop(CAP_DROP_FILTER_MAP);
			return 0;
		}
	}
	n->status |= what;
	n->taints = BPF_CORE_READ(mod, taints);
	long len = BPF_CORE_READ_STR_INTO(&n->name, mod, name);
	n->name_len = len > 0 ? (len - 1) & NAME_MASK : 0;
	return 0;
}

/* Module loads and frees come only in task context, so what the kernel's recursion guard
 * skips here is a call made while another task is preempted inside the program (7.x): a
 * load whose row would lose its module's name and taint. Where the kernel preempts, each
 * program has a spare that takes the calls left unmarked (spare.bpf.h), as the exec
 * probe's do; the loader loads none elsewhere. */
SPARED_TP(module_load, module_load, struct module *mod, note(mod, CAP_MODULE_LOADED))
SPARED_TP(module_free, module_free, struct module *mod, note(mod, CAP_MODULE_FREED))

/* The path of the file behind `fd` into the tail at `off` (< CAP_MODULE_NAME_MAX). */
static __always_inline __u32 put_fd_path(struct module_buf *b, __u32 off, __s32 fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return 0;
	return copy_path(&b->w, &b->tail[off & NAME_MASK], BPF_CORE_READ(f, f_path.mnt), BPF_CORE_READ(f, f_path.dentry));
}

/* The parameters (a user string) into the tail at `off`. */
static __always_inline __u32 put_params(struct module_buf *b, __u32 off, const char *params)
{
	long n = bpf_probe_read_user_str(&b->tail[off & TAIL_MASK], CAP_MODULE_PARAMS_MAX, params);
	if (n <= 0)
		return 0;
	if (n >= CAP_MODULE_PARAMS_MAX)
		b->m.status |= CAP_MODULE_PARAMS_TRUNCATED;
	return (n - 1) & (CAP_MODULE_PARAMS_MAX - 1);
}

/* One syscall's exit, from tp_btf/sys_exit (`nr` read from the registers) or from an
 * fexit program on the syscall's wrapper (`nr` a constant). */
static __always_inline int module_exit_body(struct pt_regs *regs, long ret, long nr, bool fexit)
{
	__u32 call;
	if (nr == NR_init_module)
		call = CAP_MODULE_INIT;
	else if (nr == NR_finit_module)
		call = CAP_MODULE_FINIT;
	else if (nr == NR_delete_module)
		call = CAP_MODULE_DELETE;
	else
		return 0;
	if (!fexit && compat_syscall())
		return 0;
	__u64 tid = bpf_get_current_pid_tgid();
	struct note *n = bpf_map_lookup_elem(&notes, &tid);
	__u32 cpu = bpf_get_smp_processor_id();
	struct module_buf *b = bpf_map_lookup_elem(&scratch, &cpu);
	if (!b || skip_current())
		goto out;
	struct cap_module *m = &b->m;
	fill_hdr(&m->hdr, CAP_KIND_MODULE);
	m->syscall = call;
	m->flags = 0;
	m->ret = ret;
	m->image_len = 0;
	m->taints = 0;
	m->status = 0;
	m->name_len = 0;
	m->path_len = 0;
	m->params_len = 0;
	if (n) {
		/* The kernel's own name for the module. */
		bpf_probe_read_kernel(b->tail, CAP_MODULE_NAME_MAX, n->name);
		m->name_len = n->name_len & NAME_MASK;
		m->taints = n->taints;
		m->status = n->status;
	} else if (call == CAP_MODULE_DELETE) {
		long len = bpf_probe_read_user_str(b->tail, CAP_MODULE_NAME_MAX, (const char *)ARG0(regs));
		m->name_len = len > 0 ? (len - 1) & NAME_MASK : 0;
	}
	__u32 off = m->name_len;
	if (call == CAP_MODULE_FINIT) {
		m->flags = ARG2(regs);
		m->path_len = put_fd_path(b, off, (__s32)ARG0(regs));
		m->params_len = put_params(b, off + m->path_len, (const char *)ARG1(regs));
	} else if (call == CAP_MODULE_INIT) {
		m->image_len = ARG1(regs);
		m->params_len = put_params(b, off, (const char *)ARG2(regs));
	} else {
		m->flags = ARG1(regs);
	}
	__u64 len = sizeof(*m) + m->name_len + m->path_len + m->params_len;
	m->hdr.len = len;
	if (len <= sizeof(*b))
		submit(b, len);
out:
	if (n)
		bpf_map_delete_elem(&notes, &tid);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(module_sys_exit, struct pt_regs *regs, long ret)
{
	return PREEMPT_OFF(module_exit_body(regs, ret, SYSCALL_NR(regs), false));
}

/* Where fexit programs load: one per syscall, at the exit of its wrapper (the loader
 * names the target from the program's name after `_fx_`), so no other syscall passes a
 * program (see file_ops.bpf.c). Where the kernel preempts, each has two spares, as the
 * file probe's have (spare.bpf.h): a call the kernel skips for the program proper is
 * taken by a spare. */
#define FX(name, nr) SPARED_FEXIT(module_fx_##name, module_exit_body(regs, ret, nr, true))

FX(init_module, NR_init_module)
FX(finit_module, NR_finit_module)
FX(delete_module, NR_delete_module)
