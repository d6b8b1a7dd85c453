// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dns_query: DNS messages over UDP and TCP, one record per message as the asking socket
 * sees it: its queries going out (egress to a DNS port) and the responses coming back
 * (ingress from a DNS port). A server's side of the same exchange (ingress to, egress
 * from a DNS port) is not recorded, so a query to a resolver on this host is one query
 * row and one response row, not two of each although both cross `lo`.
 *
 * Hooks: cgroup_skb/egress and cgroup_skb/ingress on the cgroup v2 root, which see every
 * packet of every socket in every cgroup, at the IP header. A packet that is not to or
 * from a DNS port (cap_cfg.dns_ports) costs a header read and returns.
 *
 * Owner: the socket's, kept in the socket (sk_storage) when it first sends: a query
 * leaves in the process that sent it (UDP sendmsg and TCP writes run the egress hook in
 * the sender's context), while an ingress packet runs in whatever task delivers it. The
 * task is read through its pointer (bpf_get_current_task): cgroup hooks cannot call
 * bpf_get_current_pid_tgid and the like before 6.10 or so.
 * The --pid and --comm filters apply to that owner, on responses too.
 * Latency: the response's time less its query's, matched by socket and transaction id.
 * TCP: each message is its 2-byte length, then the message; the probe follows each
 * direction of the stream, so up to MSGS_PER_SEGMENT messages in one segment each get a
 * record, and a message longer than its segment keeps its first segment's part (flagged
 * truncated) while the segments that carry the rest are skipped. A retransmitted
 * segment is taken for new data (loopback and LANs rarely retransmit).
 * The message is cut at CAP_DNS_MSG_MAX bytes (EDNS responses can be longer: wire_len
 * says how long it was, and the row is flagged truncated).
 * A record is assembled in a per-CPU buffer; a softirq that interrupts a process's
 * egress on the same CPU takes the second one (depth below).
 */
#include "common.bpf.h"
#include "net.bpf.h"

#define MSGS_PER_SEGMENT 4

/* What the probe keeps in each socket that asks. */
struct owner {
	struct cap_hdr hdr;      /* the owner's header fields, once `set` */
	__u32 netns;
	__u8 set;
	__u8 skip;               /* the owner is filtered out (--pid, --comm, the recorder) */
	__u16 _pad;
	__u32 tcp_left[2];       /* TCP: bytes of the message in progress still to come, out, in */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct owner);
} owners SEC(".maps");

/* Queries waiting for their response: (socket cookie, transaction id) -> time sent. */
struct pending_key {
	__u64 cookie;
	__u32 txid;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pending_key);
	__type(value, __u64);
} pending SEC(".maps");

/* A record: the fixed part, then the message; twice the message limit, so a length
 * masked to 2 * CAP_DNS_MSG_MAX - 1 fits whatever the verifier knows of it. */
struct dns_buf {
	struct cap_dns d;
	__u8 msg[2 * CAP_DNS_MSG_MAX];
};

/* Two per CPU, one per nesting depth: a softirq (an ingress, a TCP acknowledgement going
 * out) can interrupt a process's egress on its CPU while it assembles a record. Each
 * lookup gives a fixed pointer, which every verifier bounds. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct dns_buf);
} bufs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} depth SEC(".maps");

static __always_inline bool dns_port(__u16 port)
{
	for (int i = 0; i < CAP_DNS_PORTS_MAX; i++) {
		__u16 p = cap_cfg.dns_ports[i];
		if (!p)
			return false;
		if (p == port)
			return true;
	}
	return false;
}

/* One message, `at` bytes into the packet, `len` of it in this packet (`wire` in all). */
static __always_inline void record(struct __sk_buff *skb, struct dns_buf *b, struct owner *o,
				   struct cap_endpoint *ep, __u32 at, __u32 len, __u32 wire)
{
	struct cap_dns *d = &b->d;
	if (len > CAP_DNS_MSG_MAX)
		len = CAP_DNS_MSG_MAX;
	/* The length is kept in the record and read back from it: a copy spilled to the
	 * stack before the checks below would reach the helpers without their bounds on
	 * older verifiers (6.1 rejects that). */
	d->msg_len = len;
	barrier_var(len); /* keep the mask below: it changes nothing, but tells the verifier */
	len &= 2 * CAP_DNS_MSG_MAX - 1;
	if (len < 12)
		return; /* shorter than a DNS header */
	if (bpf_skb_load_bytes(skb, at, b->msg, len))
		return;
	if (o && o->set)
		d->hdr = o->hdr;
	else
		__builtin_memset(&d->hdr, 0, sizeof(d->hdr));
	d->hdr.kind = CAP_KIND_DNS;
	d->hdr.abi = CAP_ABI_VERSION;
	d->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	d->ep = *ep;

	/* Latency: a query's time, kept until its response arrives on the same socket. */
	struct pending_key k = {.cookie = bpf_get_socket_cookie(skb), .txid = (b->msg[0] << 8) | b->msg[1]};
	bool response = b->msg[2] & 0x80;
	d->latency_ns = 0;
	if (!response) {
		__u64 now = d->hdr.ktime_ns;
		bpf_map_update_elem(&pending, &k, &now, BPF_ANY);
	} else {
		__u64 *sent = bpf_map_lookup_elem(&pending, &k);
		if (sent) {
			d->latency_ns = d->hdr.ktime_ns - *sent;
			bpf_map_delete_elem(&pending, &k);
		}
	}
	d->wire_len = wire;
	/* Masked, not compared: at most 1023 bytes of message fit the buffer, whatever a
	 * spill leaves the verifier knowing. */
	__u64 total = sizeof(*d) + (d->msg_len & (2 * CAP_DNS_MSG_MAX - 1));
	d->hdr.len = total;
	submit(b, total);
}

/* One packet: a record per message of the asking side. */
static __always_inline int handle(struct __sk_buff *skb, bool egress)
{
	/* The socket first, before any packet byte is read: a TCP socket's ports are its
	 * own, so a TCP packet not to or from a DNS port (the asking side's remote port)
	 * leaves here. */
	struct bpf_sock *sk = skb_sock(skb);
	if (!sk)
		return 1;
	if (sk->protocol == IPPROTO_TCP) {
		if (!dns_port(bpf_ntohs(sk->dst_port)))
			return 1;
	} else if (sk->protocol != IPPROTO_UDP) {
		return 1;
	}
	struct ip_info ip = {}; /* every byte set: clang 21 spilled the unset _pad from a dead register */
	if (!parse_ip(skb, &ip) || (ip.proto != IPPROTO_UDP && ip.proto != IPPROTO_TCP))
		return 1;
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, ip.l4, ports, sizeof(ports)))
		return 1;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);
	/* The asking side only: a query out to a DNS port, a response in from one. */
	if (egress ? !dns_port(dport) : !dns_port(sport))
		return 1;
	__u32 payload = ip.l4 + 8;
	if (ip.proto == IPPROTO_TCP) {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, ip.l4 + 12, &doff, 1))
			return 1;
		payload = ip.l4 + (doff >> 4) * 4;
	}
	if (payload >= skb->len)
		return 1; /* no message: a TCP handshake or acknowledgement */

	/* The owner: taken at the socket's first packet out, in the sending task; the
	 * filters are decided then, for its responses too. */
	struct owner *o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return 1;
	if (egress && !o->set) {
		struct task_struct *t = current_task();
		fill_hdr_task(&o->hdr, CAP_KIND_DNS, t);
		o->netns = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
		o->skip = skip_task(t);
		o->set = 1;
	}
	if (o->skip || (!o->set && (cap_cfg.filter_pid || cap_cfg.filter_comm_on)))
		return 1;

	struct cap_endpoint ep = {};
	ep.family = ip.family;
	ep.proto = ip.proto;
	ep.direction = CAP_DIR_OUT; /* the asking socket sent first */
	ep.netns = o->netns;
	if (egress) {
		__builtin_memcpy(ep.saddr, ip.src, 16);
		__builtin_memcpy(ep.daddr, ip.dst, 16);
		ep.sport = sport;
		ep.dport = dport;
	} else {
		__builtin_memcpy(ep.saddr, ip.dst, 16);
		__builtin_memcpy(ep.daddr, ip.src, 16);
		ep.sport = dport;
		ep.dport = sport;
	}

	__u32 zero = 0;
	__u32 *level = bpf_map_lookup_elem(&depth, &zero);
	if (!level)
		return 1;
	__u32 key = *level;
	if (key > 1) {
		count_drop(CAP_DROP_READ_FAILED);
		return 1;
	}
	struct dns_buf *b = bpf_map_lookup_elem(&bufs, &key);
	if (!b)
		return 1;
	*level = key + 1;

	if (ip.proto == IPPROTO_UDP) {
		record(skb, b, o, &ep, payload, skb->len - payload, skb->len - payload);
	} else {
		/* The stream: skip what is left of a message begun in an earlier segment, then
		 * each message that begins here. */
		__u32 *left = &o->tcp_left[egress ? 0 : 1];
		__u32 at = payload;
		__u32 seg = skb->len - payload;
		if (*left >= seg) {
			*left -= seg;
			at = skb->len;
		} else {
			at += *left;
			*left = 0;
		}
		for (int i = 0; i < MSGS_PER_SEGMENT; i++) {
			__be16 l;
			if (at + 2 > skb->len || bpf_skb_load_bytes(skb, at, &l, 2))
				break;
			__u32 n = bpf_ntohs(l);
			__u32 here = skb->len - at - 2;
			record(skb, b, o, &ep, at + 2, n < here ? n : here, n);
			if (n > here) {
				*left = n - here;
				break;
			}
			at += 2 + n;
		}
	}
	*level = key;
	return 1;
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb)
{
	return handle(skb, true);
}

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb)
{
	return handle(skb, false);
}
