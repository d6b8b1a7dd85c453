// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * net_flow: one record per TCP connection when it ends, one per connection still open at
 * every --flow-interval (interim), and one per connection already open when the recorder
 * started (preexisting); UDP traffic summed per socket and peer, one record per flow when
 * its socket is closed, and interim ones like TCP's.
 *
 * TCP hooks:
 * - tp_btf/inet_sock_set_state: every TCP state change. It runs in process context only
 *   when a syscall causes it (connect: CLOSE->SYN_SENT, listen: ->LISTEN, close); the
 *   passive side and timers change state in softirq or in whatever task runs then, so the
 *   owner is taken at connect and listen, kept in the socket (sk_storage), and never read
 *   from the current task at other changes.
 * - tp_btf/sock_send_length, sock_recv_length (6.3+, optional): the first process to send
 *   or receive on an accepted connection becomes its owner (owner "accept"); without
 *   them an accepted connection keeps its listener's owner ("listen").
 * - iter/task_file (at start): the sockets every process holds, so a connection open
 *   before the recorder started is attributed to a process ("procfs").
 * - iter/tcp (at start and every --flow-interval): the connections open now.
 * Counters come from the kernel's own tcp_sock at the row's time: payload bytes sent
 * (first transmissions) and received, segments, retransmits, smoothed RTT. Nothing runs
 * per packet.
 *
 * UDP hooks:
 * - cgroup_skb/egress and cgroup_skb/ingress on the cgroup v2 root: every packet, at its
 *   IP header; a UDP datagram adds to its socket's flow with that peer (bytes and
 *   datagrams each way, first and last seen), anything else returns after one read. The
 *   flows live in the socket (sk_storage), at most UDP_PEERS per socket: a datagram from
 *   or to another peer takes the least recently seen slot, whose totals are written
 *   first (outcome evicted).
 * - The owner: the first task to send (egress runs in the sender's context for UDP) or
 *   to receive (tp_btf/sock_recv_length, in the receiver's, 6.3+) on the socket; until
 *   then the task that created it (cgroup/sock_create).
 * - cgroup/sock_release: the socket's flows, when it is closed; iter/udp: interim rows.
 *
 * Limits: the iterators walk the recorder's network namespace, so interim and
 * preexisting rows cover flows there (end rows come from every namespace); the direction
 * of a preexisting connection is a guess from its ports (see guess_direction); UDP flows
 * begin at the first datagram the recorder sees (no preexisting UDP rows).
 */
#include "common.bpf.h"
#include "net.bpf.h"
#include "spare.bpf.h"

#define ETIMEDOUT 110
#define ECONNREFUSED 111
#define ECONNRESET 104
#define EPIPE 32

/* include/net/tcp_states.h */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT,
	TCP_SYN_RECV,
	TCP_FIN_WAIT1,
	TCP_FIN_WAIT2,
	TCP_TIME_WAIT,
	TCP_CLOSE,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
	TCP_LISTEN,
	TCP_CLOSING,
	TCP_NEW_SYN_RECV,
};

/* What the probe keeps in each socket it follows. Cloned with the socket (BPF_F_CLONE),
 * so a connection a listener accepts starts with its listener's owner. */
struct sock_state {
	struct cap_hdr owner;  /* the owner's header fields; kind, len and ktime_ns unused */
	__u64 start_ns;
	__u32 flags;           /* CAP_NET_PREEXISTING */
	__u16 owner_kind;      /* CAP_OWNER_* */
	__u8 direction;        /* CAP_DIR_* */
	__u8 established;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_state);
} socks SEC(".maps");

static __always_inline bool is_inet(unsigned short family)
{
	return family == AF_INET || family == AF_INET6;
}

/* A preexisting connection's direction: inbound when the local port is below the
 * ephemeral range and the remote one in it (a server's side), else outbound. */
static __always_inline __u8 guess_direction(struct sock *sk)
{
	__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return lport < 32768 && rport >= 32768 ? CAP_DIR_IN : CAP_DIR_OUT;
}

static __always_inline __u16 outcome(int err, bool established)
{
	switch (err) {
	case 0:
		return established ? CAP_NET_CLOSED : CAP_NET_FAILED;
	case ECONNREFUSED:
		return CAP_NET_REFUSED;
	case ETIMEDOUT:
		return CAP_NET_TIMEOUT;
	case ECONNRESET:
	case EPIPE:
		return CAP_NET_RESET;
	default:
		return CAP_NET_FAILED;
	}
}

static __always_inline bool v4_mapped(const __u8 *a)
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

/* A dual-stack socket's IPv4 connection (::ffff:a.b.c.d at both ends) is an IPv4 flow on
 * the wire: the row says so, as the other side's row and network sensors do. */
static __always_inline void unmap_v4(struct cap_endpoint *e)
{
	if (!v4_mapped(e->saddr) || !v4_mapped(e->daddr))
		return;
	e->family = AF_INET;
	__builtin_memcpy(e->saddr, &e->saddr[12], 4);
	__builtin_memcpy(e->daddr, &e->daddr[12], 4);
	__builtin_memset(&e->saddr[4], 0, 12);
	__builtin_memset(&e->daddr[4], 0, 12);
}

/* One record for `sk` now: its owner, endpoints and counters. */
static __always_inline void emit(struct sock *sk, struct sock_state *st, __u16 how, __u32 flags)
{
	struct cap_net n = {};
	n.hdr = st->owner;
	n.hdr.kind = CAP_KIND_NET;
	n.hdr.abi = CAP_ABI_VERSION;
	n.hdr.len = sizeof(n);
	n.hdr.ktime_ns = bpf_ktime_get_boot_ns();

	struct cap_endpoint *e = &n.ep;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->proto = IPPROTO_TCP;
	e->direction = st->direction;
	/* skc_num is cleared when the socket closes (inet_put_port); inet_sport is not. */
	e->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	if (!e->sport)
		e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == AF_INET) {
		__be32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		unmap_v4(e);
	}
	e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

	/* Payload only: bytes_acked and bytes_received count SYN and FIN as a byte each (the
	 * sequence space), so sent is what was transmitted less retransmissions, and received
	 * less the FIN when the peer's FIN arrived (SOCK_DONE). */
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	n.bytes_sent = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	unsigned long sk_flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	if (received && (sk_flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))))
		received--;
	n.bytes_recv = received;
	n.segs_sent = BPF_CORE_READ(tp, segs_out);
	n.segs_recv = BPF_CORE_READ(tp, segs_in);
	n.retrans = BPF_CORE_READ(tp, total_retrans);
	n.srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3; /* kept shifted left by 3 */

	n.flags = st->flags | flags;
	n.outcome = how;
	n.owner = st->owner_kind;
	n.start_ns = st->start_ns;
	n.sock_cookie = bpf_get_socket_cookie(sk);
	submit(&n, sizeof(n));
}

/* The current task becomes the socket's owner. */
static __always_inline void own(struct sock_state *st, __u16 kind)
{
	fill_hdr(&st->owner, CAP_KIND_NET);
	st->owner_kind = kind;
}

/* The kernel runs a tracing program at most once per CPU at a time: a state change that
 * comes while net_state is running on that CPU finds it running and is skipped, counted
 * only in the program's recursion misses. That happens whenever an interrupt ends in a
 * softirq (a loopback packet, a TCP timer) while the program runs, and most often after
 * its last instruction: the kernel still counts it running through rcu_read_unlock(),
 * which can end in an IPI. In a storm of short connections on loopback it skipped one
 * state change in 800 (246 of 199,702): a connection's row lost, or one ending "failed"
 * for a missed ESTABLISHED.
 * net_state_nested, attached after it on the same tracepoint, takes those. The kernel
 * calls the two in turn for each change, and a change that comes in between (an
 * interrupt) is called for in full, both programs, before the outer call goes on: the
 * calls nest like brackets. So net_state pushes each change it handles on this CPU's
 * state_stack and the spare pops it: a spare that finds its change on top knows net_state
 * handled it, however many changes came in between. It looks further down too, past
 * changes whose spare did not run (skipped because the spare was itself running; or, on
 * the development VM, not called: up to 292 times in a storm, net_state called each
 * time), and pops those with it. One it does not find, net_state skipped: the spare takes
 * it and counts it in nested_taken. The common case is one comparison; only a change
 * taken looks at every slot in use. What is still lost (a change that comes while both
 * run) is net_state's recursion misses less nested_taken: the recorder adds that to the
 * probe's kernel drops. (The spare's own misses are no measure: most come after its last
 * instruction, and net_state takes those.) A ring of keys with a membership test, this
 * spare's first form, took a change again once more than its 16 slots of others came in
 * between, which counted it as taken and made the drops read low. */
#define STACK 256 /* slots, a power of two */

struct state_stack {
	__u64 key[STACK];
	__u32 n;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct state_stack);
} state_stack SEC(".maps");

/* One state change: the socket (its cookie, unique for the kernel's life; a counter far
 * below 2^48) and the two states. */
static __always_inline __u64 state_key(struct sock *sk, int oldstate, int newstate)
{
	return bpf_get_socket_cookie(sk) ^ ((__u64)(oldstate & 0xff) << 56) ^ ((__u64)(newstate & 0xff) << 48);
}

static __always_inline int on_state(struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP || !is_inet(sk->__sk_common.skc_family))
		return 0;
	struct sock_state *st;
	switch (newstate) {
	case TCP_SYN_SENT: /* connect(2), in the connecting task */
	case TCP_LISTEN:   /* listen(2) */
		if (oldstate != TCP_CLOSE || skip_current())
			return 0;
		st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			count_drop(CAP_DROP_FILTER_MAP);
			return 0;
		}
		own(st, newstate == TCP_SYN_SENT ? CAP_OWNER_CONNECT : CAP_OWNER_LISTEN);
		st->start_ns = bpf_ktime_get_boot_ns();
		st->flags = 0;
		st->direction = newstate == TCP_SYN_SENT ? CAP_DIR_OUT : CAP_DIR_IN;
		st->established = 0;
		return 0;
	case TCP_SYN_RECV: /* a connection its listener is accepting: cloned with its state */
		st = bpf_sk_storage_get(&socks, sk, 0, 0);
		if (!st)
			return 0;
		st->start_ns = bpf_ktime_get_boot_ns();
		st->flags = 0;
		st->direction = CAP_DIR_IN;
		st->established = 0;
		st->owner_kind = st->owner.pid ? CAP_OWNER_LISTEN : CAP_OWNER_NONE;
		return 0;
	case TCP_ESTABLISHED:
		st = bpf_sk_storage_get(&socks, sk, 0, 0);
		if (st)
			st->established = 1;
		return 0;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN)
			return 0;
		st = bpf_sk_storage_get(&socks, sk, 0, 0);
		if (!st)
			return 0;
		/* A child that dies in SYN_RECV without Fast Open was never a connection: the
		 * kernel made it from the handshake's last ACK and dropped it before it was
		 * established, either because another CPU made one from the same request first
		 * (the ACK and the first data segment handled at once; inet_ehash_nolisten) or
		 * because it could not hash it. The one that won writes the row. */
		if (oldstate == TCP_SYN_RECV && !BPF_CORE_READ((struct tcp_sock *)sk, fastopen_rsk)) {
			bpf_sk_storage_delete(&socks, sk);
			return 0;
		}
		emit(sk, st, outcome(BPF_CORE_READ(sk, sk_err), st->established), 0);
		bpf_sk_storage_delete(&socks, sk);
		return 0;
	}
	return 0;
}

/* This CPU's stack of state changes. */
static __always_inline struct state_stack *state_stack_here(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&state_stack, &zero);
}

static __always_inline void state_push(struct state_stack *s, __u64 key)
{
	/* The count first: a call nested in between pushes above this slot, and leaves the
	 * count as it found it once its spares have popped. */
	__u32 i = s->n;
	s->n = i + 1;
	s->key[i & (STACK - 1)] = key;
}

static __always_inline int net_state_body(struct sock *sk, int oldstate, int newstate)
{
	struct state_stack *s = state_stack_here();
	if (s)
		state_push(s, state_key(sk, oldstate, newstate));
	return on_state(sk, oldstate, newstate);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(net_state, struct sock *sk, int oldstate, int newstate)
{
	return PREEMPT_OFF(net_state_body(sk, oldstate, newstate));
}

/* Where the kernel preempts tasks in kernel code (7.x), a task preempted in net_state's
 * tail (after its body, inside the recursion guard) makes the kernel skip net_state for
 * the other tasks on that CPU, and one preempted in the spare's tail the spare: a change
 * that comes while both are held was lost (2 of 21 skipped changes in one CI run on 7.2).
 * There a second spare, net_state_nested2, runs after the first; the first leaves the
 * change it handled or took on the stack marked (STATE_DONE) for the second to pop; the
 * second pops a marked change, or an unmarked one (the first was skipped: net_state
 * handled it), and takes a change it finds neither way. Elsewhere the second is not
 * loaded and the first pops as before. */
#define STATE_DONE (1ULL << 47)

/* The topmost slot below the count holding `key`, from the top, or -1. Only the slots
 * below the count: above it lie changes already popped, and a socket can make the same
 * change again (a second connect after a failed one). */
static __always_inline __s64 state_find(struct state_stack *s, __u64 key)
{
	__u32 n = s->n;
	for (__u32 d = 0; d < STACK && d < n; d++) {
		if (s->key[(n - 1 - d) & (STACK - 1)] == key)
			return (__s64)(n - 1 - d);
	}
	return -1;
}

static __always_inline int state_take(struct sock *sk, int oldstate, int newstate)
{
	__u32 zero = 0;
	__u64 *taken = bpf_map_lookup_elem(&nested_taken, &zero);
	if (taken)
		(*taken)++;
	return on_state(sk, oldstate, newstate);
}

/* The state changes net_state skipped (see state_stack). */
static __always_inline int net_state_nested_body(struct sock *sk, int oldstate, int newstate)
{
	struct state_stack *s = state_stack_here();
	if (!s)
		return 0;
	__u64 key = state_key(sk, oldstate, newstate);
	bool second = cap_cfg.preempt & CAP_PREEMPT_SPARES;
	__s64 at = state_find(s, key);
	if (at >= 0) {
		/* Popped down to it; where a second spare runs, it stays for that one, marked. */
		s->n = at;
		if (second)
			state_push(s, key | STATE_DONE);
		return 0;
	}
	if (second)
		state_push(s, key | STATE_DONE);
	return state_take(sk, oldstate, newstate);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(net_state_nested, struct sock *sk, int oldstate, int newstate)
{
	return PREEMPT_OFF(net_state_nested_body(sk, oldstate, newstate));
}

/* The changes both net_state and its first spare skipped (see STATE_DONE). */
static __always_inline int net_state_nested2_body(struct sock *sk, int oldstate, int newstate)
{
	struct state_stack *s = state_stack_here();
	if (!s)
		return 0;
	__u64 key = state_key(sk, oldstate, newstate);
	__s64 at = state_find(s, key | STATE_DONE);
	if (at < 0)
		at = state_find(s, key);
	if (at >= 0) {
		s->n = at;
		return 0;
	}
	return state_take(sk, oldstate, newstate);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(net_state_nested2, struct sock *sk, int oldstate, int newstate)
{
	return PREEMPT_OFF(net_state_nested2_body(sk, oldstate, newstate));
}

static __always_inline void claim_udp(struct sock *sk);

/* An accepted connection's first send or receive names the process that took it. */
static __always_inline void claim(struct sock *sk)
{
	if (sk->sk_protocol == IPPROTO_UDP) {
		claim_udp(sk);
		return;
	}
	struct sock_state *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (!st || (st->owner_kind != CAP_OWNER_LISTEN && st->owner_kind != CAP_OWNER_NONE) ||
	    st->direction != CAP_DIR_IN || skip_current())
		return;
	own(st, CAP_OWNER_ACCEPT);
}

static __always_inline int net_claim_body(struct sock *sk)
{
	claim(sk);
	return 0;
}

/* Sends and receives come only in task context, so what the kernel's recursion guard
 * skips here is a call made while another task is preempted inside the program (7.x: a
 * connection left owned by its listener). Where the kernel preempts, each has a spare
 * that takes the calls left unmarked (spare.bpf.h); the loader loads none elsewhere. */
#define CLAIM_ARGS struct sock *sk, int ret, int flags

SPARED_TP(sock_send_length, net_send, CLAIM_ARGS, net_claim_body(sk))
SPARED_TP(sock_recv_length, net_recv, CLAIM_ARGS, net_claim_body(sk))

/* At start: the TCP sockets every process holds, so connections and listeners from
 * before the recorder get an owner (the first process found holding them). The walk
 * notes each socket's holder by the socket's address, and the TCP walk after it
 * (net_scan_tcp, run next by the loader) gives the socket its owner: a socket reached
 * from a file is not one bpf_sk_storage_get takes on every kernel (6.18.44 marks
 * `sock->sk` untrusted), while the TCP walk's is. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct cap_hdr);
} held_socks SEC(".maps");

SEC("iter/task_file")
int net_scan_owners(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	if (!task || !file)
		return 0;
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_sock_from_file))
		return 0; /* before 5.11: preexisting connections keep no owner */
	struct socket *sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !is_inet(BPF_CORE_READ(sk, __sk_common.skc_family)))
		return 0;
	if (skip_task(task))
		return 0;
	__u64 key = (__u64)sk;
	struct cap_hdr owner = {};
	fill_hdr_task(&owner, CAP_KIND_NET, task);
	bpf_map_update_elem(&held_socks, &key, &owner, BPF_NOEXIST);
	return 0;
}

/* The connections open now, as update rows. At start, a connection the probe has not
 * seen becomes a preexisting one (its first row is then its update row at start). */
static __always_inline int walk_tcp(struct bpf_iter__tcp *ctx, bool at_start)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* time-wait and request sockets: no connection state left */
	struct sock *sk = (struct sock *)tp;
	if (!is_inet(BPF_CORE_READ(sk, __sk_common.skc_family)))
		return 0;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* At start, the process net_scan_owners found holding it; a socket no process was
	 * found holding is listed too, unless --pid or --comm ask for some processes only. */
	__u64 key = (__u64)sk;
	struct cap_hdr *held = at_start ? bpf_map_lookup_elem(&held_socks, &key) : 0;
	bool create = at_start && (held || (!cap_cfg.filter_pid && !cap_cfg.filter_comm_on));
	struct sock_state *st = bpf_sk_storage_get(&socks, sk, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (st && at_start && st->owner_kind == CAP_OWNER_NONE && !st->flags) {
		/* held by the process found at start, or by none (or the kernel has no
		 * bpf_sock_from_file) */
		if (held) {
			st->owner = *held;
			st->owner_kind = CAP_OWNER_PROCFS;
		}
		st->flags = CAP_NET_PREEXISTING;
		st->start_ns = bpf_ktime_get_boot_ns();
		st->direction = state == TCP_LISTEN ? CAP_DIR_IN : guess_direction(sk);
		st->established = state != TCP_SYN_SENT && state != TCP_SYN_RECV;
	}
	if (held)
		bpf_map_delete_elem(&held_socks, &key);
	if (!st)
		return 0;
	if (state == TCP_LISTEN || (at_start && !(st->flags & CAP_NET_PREEXISTING)))
		return 0;
	emit(sk, st, CAP_NET_OPEN, CAP_NET_UPDATE);
	return 0;
}

SEC("iter/tcp")
int net_scan_tcp(struct bpf_iter__tcp *ctx)
{
	return walk_tcp(ctx, true);
}

SEC("iter/tcp")
int net_update_tcp(struct bpf_iter__tcp *ctx)
{
	return walk_tcp(ctx, false);
}

/* --- UDP --- */

#define UDP_PEERS 8

struct udp_peer {
	__u8 local[16];
	__u8 remote[16];
	__u16 lport;
	__u16 rport;
	__u8 used;
	__u8 direction;        /* CAP_DIR_OUT: the first datagram went out */
	__u16 family;          /* a dual-stack socket has IPv4 and IPv6 peers */
	__u64 bytes_sent;
	__u64 bytes_recv;
	__u64 dgrams_sent;
	__u64 dgrams_recv;
	__u64 first_ns;
	__u64 last_ns;
};

struct udp_state {
	struct cap_hdr owner;
	__u16 owner_kind;
	__u16 _pad;
	__u32 netns;
	__u64 cookie;          /* the socket's cookie, taken at its first datagram */
	struct udp_peer peers[UDP_PEERS];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct udp_state);
} udps SEC(".maps");

/* The current task becomes the UDP socket's owner (through the task pointer: this also
 * runs in cgroup hooks). */
static __always_inline void own_udp(struct udp_state *st, struct task_struct *t, __u16 kind)
{
	fill_hdr_task(&st->owner, CAP_KIND_NET, t);
	st->owner_kind = kind;
	st->netns = BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
}

/* The first task to send or receive owns the socket, over the one that created it. */
static __always_inline bool unclaimed(struct udp_state *st)
{
	return st->owner_kind == CAP_OWNER_NONE || st->owner_kind == CAP_OWNER_SOCKET;
}

static __always_inline void claim_udp(struct sock *sk)
{
	struct udp_state *st = bpf_sk_storage_get(&udps, sk, 0, 0);
	struct task_struct *t = current_task();
	if (st && unclaimed(st) && !skip_task(t))
		own_udp(st, t, CAP_OWNER_SEND);
}

/* One record for a UDP flow (one peer of one socket). */
static __always_inline void emit_udp(struct udp_state *st, struct udp_peer *p, __u16 how, __u32 flags)
{
	struct cap_net n = {};
	n.hdr = st->owner;
	n.hdr.kind = CAP_KIND_NET;
	n.hdr.abi = CAP_ABI_VERSION;
	n.hdr.len = sizeof(n);
	n.hdr.ktime_ns = bpf_ktime_get_boot_ns();
	n.ep.family = p->family;
	n.ep.proto = IPPROTO_UDP;
	n.ep.direction = p->direction;
	n.ep.sport = p->lport;
	n.ep.dport = p->rport;
	__builtin_memcpy(n.ep.saddr, p->local, 16);
	__builtin_memcpy(n.ep.daddr, p->remote, 16);
	n.ep.netns = st->netns;
	n.bytes_sent = p->bytes_sent;
	n.bytes_recv = p->bytes_recv;
	n.segs_sent = p->dgrams_sent;
	n.segs_recv = p->dgrams_recv;
	n.flags = flags;
	n.outcome = how;
	n.owner = st->owner_kind;
	n.start_ns = p->first_ns;
	n.last_ns = p->last_ns;
	n.sock_cookie = st->cookie;
	submit(&n, sizeof(n));
}

static __always_inline bool same16(const __u8 *a, const __u8 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

/* One datagram of a socket's flow with a peer. */
static __always_inline int udp_packet(struct __sk_buff *skb, bool egress)
{
	/* The socket says whether this is UDP before any packet byte is read: every TCP
	 * packet passes here and leaves at this test. */
	struct bpf_sock *sk = skb_sock(skb);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return 1;
	struct ip_info ip = {}; /* every byte set: clang 21 spilled the unset _pad from a dead register */
	if (!parse_ip(skb, &ip) || ip.proto != IPPROTO_UDP)
		return 1;
	struct {
		__be16 sport, dport, len, check;
	} uh;
	if (bpf_skb_load_bytes(skb, ip.l4, &uh, sizeof(uh)))
		return 1;
	/* Egress runs in the sender's context: filtered senders create nothing. Ingress
	 * creates the socket's state only when nothing is filtered (its owner is then the
	 * first process to receive). */
	struct task_struct *t = current_task();
	bool create = egress ? !skip_task(t) : !cap_cfg.filter_pid && !cap_cfg.filter_comm_on;
	struct udp_state *st = bpf_sk_storage_get(&udps, sk, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!st)
		return 1;
	if (egress && unclaimed(st))
		own_udp(st, t, CAP_OWNER_SEND);
	if (!st->cookie)
		st->cookie = bpf_get_socket_cookie(skb);
	__u8 *local = egress ? ip.src : ip.dst, *remote = egress ? ip.dst : ip.src;
	__u16 lport = bpf_ntohs(egress ? uh.sport : uh.dport), rport = bpf_ntohs(egress ? uh.dport : uh.sport);
	__u64 now = bpf_ktime_get_boot_ns();
	/* A GSO packet (UDP_SEGMENT) carries gso_segs datagrams behind one set of headers. */
	__u64 dgrams = skb->gso_segs > 1 ? skb->gso_segs : 1;
	__u64 payload = skb->len > ip.l4 + 8 ? skb->len - ip.l4 - 8 : 0;

	/* This peer's slot, else a free one, else the least recently seen. */
	__u32 slot = UDP_PEERS, oldest = 0;
	__u64 oldest_ns = ~0ULL;
	for (__u32 i = 0; i < UDP_PEERS; i++) {
		struct udp_peer *p = &st->peers[i];
		if (!p->used) {
			if (slot == UDP_PEERS)
				slot = i;
			continue;
		}
		if (p->rport == rport && p->lport == lport && p->family == ip.family && same16(p->remote, remote) &&
		    same16(p->local, local)) {
			slot = i;
			break;
		}
		if (p->last_ns < oldest_ns) {
			oldest_ns = p->last_ns;
			oldest = i;
		}
	}
	if (slot >= UDP_PEERS) {
		slot = oldest & (UDP_PEERS - 1);
		emit_udp(st, &st->peers[slot], CAP_NET_EVICTED, 0);
		st->peers[slot].used = 0;
	}
	struct udp_peer *p = &st->peers[slot & (UDP_PEERS - 1)];
	if (!p->used) {
		__builtin_memset(p, 0, sizeof(*p));
		__builtin_memcpy(p->local, local, 16);
		__builtin_memcpy(p->remote, remote, 16);
		p->lport = lport;
		p->rport = rport;
		p->family = ip.family;
		p->used = 1;
		p->direction = egress ? CAP_DIR_OUT : CAP_DIR_IN;
		p->first_ns = now;
	}
	/* Atomic: threads on two CPUs can send on one socket at once. (Two new peers taking
	 * one free slot at the same moment can still mix; the slot's owner wins.) */
	if (egress) {
		__sync_fetch_and_add(&p->bytes_sent, payload);
		__sync_fetch_and_add(&p->dgrams_sent, dgrams);
	} else {
		__sync_fetch_and_add(&p->bytes_recv, payload);
		__sync_fetch_and_add(&p->dgrams_recv, dgrams);
	}
	p->last_ns = now;
	return 1;
}

SEC("cgroup_skb/egress")
int net_udp_egress(struct __sk_buff *skb)
{
	return udp_packet(skb, true);
}

SEC("cgroup_skb/ingress")
int net_udp_ingress(struct __sk_buff *skb)
{
	return udp_packet(skb, false);
}

/* A UDP socket's creator: its owner until a task sends or receives on it (receiving is
 * seen on 6.3+ only, so before that a socket that only receives keeps its creator). */
SEC("cgroup/sock_create")
int net_udp_create(struct bpf_sock *sk)
{
	if (sk->protocol != IPPROTO_UDP || (sk->family != AF_INET && sk->family != AF_INET6))
		return 1;
	struct task_struct *t = current_task();
	if (skip_task(t))
		return 1;
	struct udp_state *st = bpf_sk_storage_get(&udps, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st && st->owner_kind == CAP_OWNER_NONE)
		own_udp(st, t, CAP_OWNER_SOCKET);
	return 1;
}

/* Every flow of a UDP socket, as it is closed. */
SEC("cgroup/sock_release")
int net_udp_release(struct bpf_sock *sk)
{
	struct udp_state *st = bpf_sk_storage_get(&udps, sk, 0, 0);
	if (!st)
		return 1;
	for (__u32 i = 0; i < UDP_PEERS; i++) {
		struct udp_peer *p = &st->peers[i];
		if (p->used)
			emit_udp(st, p, CAP_NET_CLOSED, 0);
		p->used = 0; /* the storage goes with the socket (this hook may not delete it) */
	}
	return 1;
}

/* The UDP flows open now, as interim rows. */
SEC("iter/udp")
int net_update_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *us = ctx->udp_sk;
	if (!us)
		return 0;
	struct udp_state *st = bpf_sk_storage_get(&udps, (struct sock *)us, 0, 0);
	if (!st)
		return 0;
	for (__u32 i = 0; i < UDP_PEERS; i++) {
		struct udp_peer *p = &st->peers[i];
		if (p->used)
			emit_udp(st, p, CAP_NET_OPEN, CAP_NET_UPDATE);
	}
	return 0;
}
