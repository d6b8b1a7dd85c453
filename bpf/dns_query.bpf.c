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
 * Latency: the response's time less its query's, matched by socket and transaction id.
 * TCP: a segment that starts a message (2-byte length, then the message) is recorded; a
 * message split over segments keeps its first segment's part and is flagged truncated.
 * The message is cut at CAP_DNS_MSG_MAX bytes (EDNS responses can be longer: wire_len
 * says how long it was, and the row is flagged truncated).
 */
#include "common.bpf.h"
#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* The UAPI view of a socket (offsets fixed, no relocation; the fields up to those read). */
struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 mark;
	__u32 priority;
	__u32 src_ip4;
	__u32 src_ip6[4];
	__u32 src_port;
	__be16 dst_port;
	__u16 _pad;
};

/* The __sk_buff fields this program reads (the UAPI context, not the kernel's sk_buff). */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
	__u32 napi_id;
	__u32 family;
	__u32 remote_ip4;
	__u32 local_ip4;
	__u32 remote_ip6[4];
	__u32 local_ip6[4];
	__u32 remote_port;
	__u32 local_port;
	__u32 data_meta;
	__u64 flow_keys;
	__u64 tstamp;
	__u32 wire_len;
	__u32 gso_segs;
	struct bpf_sock *sk;
};

/* The socket's owner, set at its first packet out (in the sending task). */
struct owner {
	struct cap_hdr hdr;
	__u32 netns;
	__u32 set;
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

/* A record is assembled here: the fixed part, then the message. One slot per CPU; twice
 * the message limit, so a length masked to 2 * CAP_DNS_MSG_MAX - 1 fits whatever the
 * verifier knows of it. */
struct dns_buf {
	struct cap_dns d;
	__u8 msg[2 * CAP_DNS_MSG_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256); /* the loader sets the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct dns_buf);
} scratch SEC(".maps");

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

/* One packet: record it when it is a message of the asking side. */
static __always_inline int handle(struct __sk_buff *skb, bool egress)
{
	/* The socket first, before any packet byte is read: a TCP socket's ports are its
	 * own, so a TCP packet not to or from a DNS port (the asking side's remote port)
	 * leaves here. */
	struct bpf_sock *sk = skb->sk ? bpf_sk_fullsock(skb->sk) : 0;
	if (!sk)
		return 1;
	if (sk->protocol == IPPROTO_TCP) {
		if (!dns_port(bpf_ntohs(sk->dst_port)))
			return 1;
	} else if (sk->protocol != IPPROTO_UDP) {
		return 1;
	}
	__u8 ver;
	if (bpf_skb_load_bytes(skb, 0, &ver, 1))
		return 1;
	ver >>= 4;
	__u32 off;
	__u8 proto;
	struct cap_endpoint ep = {};
	__u8 src[16] = {}, dst[16] = {};
	if (ver == 4) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return 1;
		if ((h[6] & 0x3f) || h[7]) /* a fragment: only the first has the ports */
			return 1;
		off = (h[0] & 0xf) * 4;
		proto = h[9];
		__builtin_memcpy(src, &h[12], 4);
		__builtin_memcpy(dst, &h[16], 4);
		ep.family = AF_INET;
	} else if (ver == 6) {
		__u8 h[40];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return 1;
		off = 40; /* extension headers: not followed */
		proto = h[6];
		__builtin_memcpy(src, &h[8], 16);
		__builtin_memcpy(dst, &h[24], 16);
		ep.family = AF_INET6;
	} else {
		return 1;
	}
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return 1;
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
		return 1;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);
	/* The asking side only: a query out to a DNS port, a response in from one. */
	if (egress ? !dns_port(dport) : !dns_port(sport))
		return 1;

	__u32 payload;
	if (proto == IPPROTO_UDP) {
		payload = off + 8;
	} else {
		__u8 doff;
		if (bpf_skb_load_bytes(skb, off + 12, &doff, 1))
			return 1;
		payload = off + (doff >> 4) * 4 + 2; /* past the message's 2-byte length */
	}
	if (payload >= skb->len)
		return 1; /* no message: a TCP handshake or acknowledgement */

	struct owner *o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	struct task_struct *t = current_task();
	if (egress && o && !o->set) {
		fill_hdr_task(&o->hdr, CAP_KIND_DNS, t);
		o->netns = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
		o->set = 1;
	}
	if (o && o->set && (o->hdr.pid == cap_cfg.self_tgid ||
			    (cap_cfg.filter_pid && o->hdr.pid != cap_cfg.filter_pid)))
		return 1;
	if (egress && skip_task(t))
		return 1;

	__u32 cpu = bpf_get_smp_processor_id();
	struct dns_buf *b = bpf_map_lookup_elem(&scratch, &cpu);
	if (!b)
		return 1;
	__u32 wire = skb->len - payload;
	if (proto == IPPROTO_TCP) {
		__be16 l;
		if (!bpf_skb_load_bytes(skb, payload - 2, &l, 2))
			wire = bpf_ntohs(l);
	}
	struct cap_dns *d = &b->d;
	__u32 len = skb->len - payload;
	if (len > CAP_DNS_MSG_MAX)
		len = CAP_DNS_MSG_MAX;
	/* The length is kept in the record, and not used past the copy: a copy of it spilled
	 * to the stack before the checks below would reach the helper without their bounds
	 * on older verifiers (6.1 rejects that). */
	d->msg_len = len;
	barrier_var(len); /* keep the mask below: it changes nothing, but tells the verifier */
	len &= 2 * CAP_DNS_MSG_MAX - 1;
	if (len < 12)
		return 1; /* shorter than a DNS header */
	if (bpf_skb_load_bytes(skb, payload, b->msg, len))
		return 1;

	if (o && o->set)
		d->hdr = o->hdr;
	else
		__builtin_memset(&d->hdr, 0, sizeof(d->hdr));
	d->hdr.kind = CAP_KIND_DNS;
	d->hdr.abi = CAP_ABI_VERSION;
	d->hdr.ktime_ns = bpf_ktime_get_boot_ns();
	ep.proto = proto;
	ep.direction = CAP_DIR_OUT; /* the asking socket sent first */
	ep.netns = o ? o->netns : 0;
	ep._pad0 = 0;
	if (egress) {
		__builtin_memcpy(ep.saddr, src, 16);
		__builtin_memcpy(ep.daddr, dst, 16);
		ep.sport = sport;
		ep.dport = dport;
	} else {
		__builtin_memcpy(ep.saddr, dst, 16);
		__builtin_memcpy(ep.daddr, src, 16);
		ep.sport = dport;
		ep.dport = sport;
	}
	d->ep = ep;

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
	/* Masked, not compared: a bound from a comparison can be lost to a spill on older
	 * verifiers; at most 1023 bytes of message fit the buffer whatever happens. */
	__u64 total = sizeof(*d) + (d->msg_len & (2 * CAP_DNS_MSG_MAX - 1));
	d->hdr.len = total;
	submit(b, total);
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
