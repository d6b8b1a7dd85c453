/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Paths from the kernel's own structures: the open file behind a descriptor, and the
 * absolute path of a (mount, dentry) pair, walked up to the root across mounts
 * (bpf_d_path is not available to tracepoints). Shared by file_ops and module_load.
 * Limits of the walk: at most WALK_DEPTH components and CAP_PATH_MAX bytes (a longer
 * path keeps its last components); the path is as seen from the initial mount namespace's
 * root, not a chroot's or container's; a deleted file keeps its last name.
 */
#ifndef CAPTURE_PATH_BPF_H
#define CAPTURE_PATH_BPF_H

#include "common.bpf.h"

#define WALK_DEPTH 40
#define NAME_MAX 255
#define PATH_MASK (CAP_PATH_MAX - 1)

/* Where walk_path gathers dentry names, from the end backwards; part of a probe's per-CPU
 * scratch value (a map value, so the verifier bounds it). */
struct path_walk {
	char buf[CAP_PATH_MAX + NAME_MAX + 1];
	__u32 pos; /* walk_path's position in buf */
};

/* The open file behind `fd` in the current task, or NULL. */
static __always_inline struct file *fd_file(__s32 fd)
{
	struct file **arr;
	__u32 max;
	if (HAVE_TASK_BTF) {
		/* Plain loads (a fault reads as 0), not a helper call per pointer. */
		struct fdtable *fdt = bpf_get_current_task_btf()->files->fdt;
		max = fdt->max_fds;
		arr = fdt->fd;
	} else {
		struct task_struct *t = (struct task_struct *)bpf_get_current_task();
		struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
		max = BPF_CORE_READ(fdt, max_fds);
		arr = BPF_CORE_READ(fdt, fd);
	}
	if (fd < 0 || (__u32)fd >= max)
		return 0;
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
	return f;
}

/* Gathers the path of (vfsmnt, dentry) at the end of w->buf; returns where it starts
 * (the path is w->buf[start .. CAP_PATH_MAX)). The position lives in the map value, not
 * in a register: the verifier then sees every iteration alike and the loop verifies in
 * linear time instead of exploring each distinct position. */
static __always_inline __u32 walk_path(struct path_walk *w, struct vfsmount *vfsmnt, struct dentry *dentry)
{
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	struct dentry *root = BPF_CORE_READ(mnt, mnt.mnt_root);
	w->pos = CAP_PATH_MAX;
	/* Per component: the parent with the name's length and pointer (plain loads on 6.2+;
	 * before, one read, as the fields are adjacent in struct dentry on every kernel so
	 * far, checked at load), then one read of the name. */
	for (int i = 0; i < WALK_DEPTH; i++) {
		struct {
			struct dentry *parent;
			struct qstr name;
		} link;
		if (bpf_ksym_exists(bpf_rdonly_cast)) {
			/* 6.2+: plain loads through a BTF-typed pointer; the name's bytes are then
			 * the one helper call per component. */
			struct dentry *d = bpf_core_cast(dentry, struct dentry);
			link.parent = d->d_parent;
			link.name.hash_len = d->d_name.hash_len;
			link.name.name = d->d_name.name;
		} else if (bpf_core_field_offset(struct dentry, d_name) == bpf_core_field_offset(struct dentry, d_parent) + 8) {
			if (bpf_probe_read_kernel(&link, sizeof(link), (void *)dentry + bpf_core_field_offset(struct dentry, d_parent)))
				break;
		} else {
			link.parent = BPF_CORE_READ(dentry, d_parent);
			if (bpf_core_read(&link.name, sizeof(link.name), &dentry->d_name))
				break;
		}
		struct dentry *parent = link.parent;
		if (dentry == root || dentry == parent) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (dentry != root || up == mnt)
				break; /* the root of everything */
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			root = BPF_CORE_READ(mnt, mnt.mnt_root);
			continue;
		}
		struct qstr name = link.name;
		__u32 len = name.len & NAME_MAX;
		__u32 pos = w->pos & (2 * CAP_PATH_MAX - 1);
		if (len + 1 > pos)
			break;
		pos -= len;
		bpf_probe_read_kernel(&w->buf[pos & PATH_MASK], len, name.name);
		pos -= 1;
		w->buf[pos & PATH_MASK] = '/';
		w->pos = pos;
		dentry = parent;
	}
	__u32 pos = w->pos & (2 * CAP_PATH_MAX - 1);
	if (pos == CAP_PATH_MAX) {
		pos -= 1;
		w->buf[pos & PATH_MASK] = '/';
	}
	return pos;
}

/* Walks (mnt, d) and copies the path to dst, which has room for CAP_PATH_MAX bytes;
 * returns its length (0 when there is nothing to walk). */
static __always_inline __u32 copy_path(struct path_walk *w, char *dst, struct vfsmount *mnt, struct dentry *d)
{
	if (!mnt || !d)
		return 0;
	__u32 start = walk_path(w, mnt, d);
	__u32 len = (CAP_PATH_MAX - start) & PATH_MASK;
	if (start == 0)
		len = CAP_PATH_MAX - 1;
	bpf_probe_read_kernel(dst, len, &w->buf[start & PATH_MASK]);
	return len;
}

#endif /* CAPTURE_PATH_BPF_H */
