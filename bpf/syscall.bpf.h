/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Syscalls seen from the BTF raw tracepoint tp_btf/sys_exit: the registers saved at entry
 * still hold the arguments (the result is known by then), per architecture. Each probe
 * lists the syscall numbers it decodes (asm/unistd.h) itself.
 */
#ifndef CAPTURE_SYSCALL_BPF_H
#define CAPTURE_SYSCALL_BPF_H

#include "common.bpf.h"

#if defined(__TARGET_ARCH_x86)
#define TS_COMPAT 0x0002
#define ARG0(r) ((r)->di)
#define ARG1(r) ((r)->si)
#define ARG2(r) ((r)->dx)
#define ARG3(r) ((r)->r10)
#define ARG4(r) ((r)->r8)
#define SYSCALL_NR(r) ((r)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define ARG0(r) ((r)->orig_x0) /* x0 holds the result by now */
#define ARG1(r) ((r)->regs[1])
#define ARG2(r) ((r)->regs[2])
#define ARG3(r) ((r)->regs[3])
#define ARG4(r) ((r)->regs[4])
#define SYSCALL_NR(r) ((r)->syscallno)
#endif

/* A 32-bit syscall on x86_64 has other numbers: not ours to decode (nor recorded, as with
 * the syscall tracepoints). */
static __always_inline bool compat_syscall(void)
{
#if defined(__TARGET_ARCH_x86)
	if (HAVE_TASK_BTF)
		return bpf_get_current_task_btf()->thread_info.status & TS_COMPAT;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, thread_info.status) & TS_COMPAT;
#else
	return false;
#endif
}

#endif /* CAPTURE_SYSCALL_BPF_H */
