/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the network probes (net_flow, dns_query) share: the UAPI contexts of cgroup hooks
 * and the IP header walk of a packet seen at its network header (cgroup_skb).
 */
#ifndef CAPTURE_NET_BPF_H
#define CAPTURE_NET_BPF_H

#include <bpf/bpf_endian.h>

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

/* The UAPI view of a socket that cgroup hooks get (offsets fixed by the UAPI, no
 * relocation; the fields up to the last one read). */
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

/* The UAPI packet context of cgroup_skb programs (not the kernel's sk_buff). */
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

/* The packet's socket, full (not a request or time-wait one), or NULL. */
static __always_inline struct bpf_sock *skb_sock(struct __sk_buff *skb)
{
	return skb->sk ? bpf_sk_fullsock(skb->sk) : 0;
}

/* A packet's IP layer: family, transport protocol, where the transport header starts,
 * and the addresses (IPv4 in the first 4 bytes). */
struct ip_info {
	__u8 src[16];
	__u8 dst[16];
	__u32 l4;
	__u16 family;
	__u8 proto;
	__u8 _pad;
};

/* Reads the IP header at the start of a cgroup_skb packet. False for anything but IPv4
 * and IPv6, and for a later IPv4 fragment (no transport header: the first fragment
 * carries the ports and counts the datagram). IPv6 extension headers are not followed. */
static __always_inline bool parse_ip(struct __sk_buff *skb, struct ip_info *ip)
{
	__u8 ver;
	if (bpf_skb_load_bytes(skb, 0, &ver, 1))
		return false;
	if (ver >> 4 == 4) {
		__u8 h[20];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)) || (h[6] & 0x3f) || h[7])
			return false;
		ip->l4 = (h[0] & 0xf) * 4;
		ip->proto = h[9];
		__builtin_memset(ip->src, 0, sizeof(ip->src)); /* compared as 16 bytes */
		__builtin_memset(ip->dst, 0, sizeof(ip->dst));
		__builtin_memcpy(ip->src, &h[12], 4);
		__builtin_memcpy(ip->dst, &h[16], 4);
		ip->family = AF_INET;
		return true;
	}
	if (ver >> 4 == 6) {
		__u8 h[40];
		if (bpf_skb_load_bytes(skb, 0, h, sizeof(h)))
			return false;
		ip->l4 = 40;
		ip->proto = h[6];
		__builtin_memcpy(ip->src, &h[8], 16);
		__builtin_memcpy(ip->dst, &h[24], 16);
		ip->family = AF_INET6;
		return true;
	}
	return false;
}

#endif /* CAPTURE_NET_BPF_H */
