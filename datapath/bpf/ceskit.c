// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/*
 * ceskit's policy enforcement for one endpoint and one direction, attached with tcx to the
 * endpoint's host-side interface (or run with BPF_PROG_TEST_RUN). One program instance per
 * endpoint and direction: endpoint_id and policy_dir are load-time constants.
 *
 * Per packet: parse Ethernet, IPv4/IPv6 (extension headers), TCP/UDP/SCTP/ICMP; connection
 * tracking first (established flows and replies pass without a policy lookup); then the remote
 * identity from the ipcache (exact hash, then LPM), then the verdict:
 *
 *   1. exact hash  (endpoint, identity,   dir, proto, port)
 *   2. exact hash  (endpoint, 0,          dir, proto, port)
 *   3. LPM         (endpoint, identity,   dir, proto, port prefix)
 *   4. LPM         (endpoint, 0,          dir, proto, port prefix)
 *
 * The Go side materialises the entries so that the first hit is the answer the datapath
 * arbitration (specific vs wildcard identity, precedence, longest prefix) gives: for an identity
 * with entries of its own, its exact ports (and the wildcard's where its answer differs) are in
 * (1), and, if it has prefix entries, those with the wildcard's merged in are in (3). An
 * exact-port rule costs one lookup, a wildcard-identity exact-port rule two; ranges the Go side
 * writes as exact ports one; larger ranges and protocol-only rules three or four.
 *
 * Fragments: the first fragment is looked up and tracked like any packet. Later fragments carry
 * no ports: they are looked up with port 0, so only entries that cover every port of the protocol
 * (or any protocol) allow them.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#include "bpf_endian.h"
#include "bpf_helpers.h"
#include "ceskit.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Load-time settings, set per program instance from Go. */
volatile const __u32 endpoint_id = 0;
volatile const __u8 policy_dir = DIR_INGRESS;
volatile const __s32 allow_ret = TCX_NEXT;
volatile const __u8 use_ct = 1;
volatile const __u64 ct_timeout_ns = 300000000000ULL;
volatile const __u64 event_rate = 1000;  /* events per second per CPU */
volatile const __u64 event_burst = 100;  /* events */
volatile const __u8 event_new_flows = 0; /* also report allowed new flows */
volatile const __u8 allow_icmp_frag_needed = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_ipcache SEC(".maps");

/* IPv4 host addresses, keyed by the address in network byte order: a 4-byte key hashes faster
 * than the 16-byte mapped form. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct ipcache_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_ipcache4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_lpm_key);
	__type(value, struct ipcache_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_ipcache_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct policy_key);
	__type(value, struct policy_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_lpm_key);
	__type(value, struct policy_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_policy_lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct_key);
	__type(value, struct ct_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ceskit_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ratelimit);
} ceskit_ratelimit SEC(".maps");

/* Force the event struct into BTF for bpf2go. */
const struct event *unused_event __attribute__((unused));

#define FRAG_NONE 0
#define FRAG_FIRST 1
#define FRAG_LATER 2

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_NONE 59
#define NEXTHDR_DEST 60
#define MAX_EXT_HDRS 6

struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 ipv6;
	__u8 frag;
	__u8 icmp_code;
};

/* count adds one packet to the reason's counter of this program's direction. */
static __always_inline void count(__u32 reason)
{
	__u32 idx = policy_dir * CNT_MAX + reason;
	__u64 *c = bpf_map_lookup_elem(&ceskit_counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline void lost(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&ceskit_lost, &idx);
	if (c)
		*c += 1;
}

static __always_inline void map_v4(__u8 *dst, __u32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

/* parse fills f from the packet. It returns 1 for an IP packet, 0 for a non-IP frame, and -1 for
 * a malformed or truncated IP packet. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return skb->len < sizeof(*eth) ? -1 : 0;
	__u16 h_proto = eth->h_proto;

	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + off;
		if ((void *)(ip + 1) > data_end)
			return -1;
		if (ip->version != 4 || ip->ihl < 5)
			return -1;
		__u32 hlen = ip->ihl * 4;
		map_v4(f->saddr, ip->saddr);
		map_v4(f->daddr, ip->daddr);
		f->proto = ip->protocol;
		__u16 frag = bpf_ntohs(ip->frag_off);
		if (frag & 0x1fff)
			f->frag = FRAG_LATER;
		else if (frag & 0x2000)
			f->frag = FRAG_FIRST;
		off += hlen;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		if (ip6->version != 6)
			return -1;
		f->ipv6 = 1;
		__builtin_memcpy(f->saddr, &ip6->saddr, 16);
		__builtin_memcpy(f->daddr, &ip6->daddr, 16);
		__u8 nh = ip6->nexthdr;
		off += sizeof(*ip6);
#pragma unroll
		for (int i = 0; i < MAX_EXT_HDRS; i++) {
			if (nh != NEXTHDR_HOP && nh != NEXTHDR_ROUTING && nh != NEXTHDR_DEST &&
			    nh != NEXTHDR_FRAGMENT && nh != NEXTHDR_AUTH)
				break;
			__u8 *ext = data + off;
			if ((void *)(ext + 8) > data_end)
				return -1;
			__u8 next = ext[0];
			if (nh == NEXTHDR_FRAGMENT) {
				__u16 fo = ((__u16)ext[2] << 8) | ext[3];
				if (fo & 0xfff8)
					f->frag = FRAG_LATER;
				else if (fo & 1)
					f->frag = FRAG_FIRST;
				off += 8;
			} else if (nh == NEXTHDR_AUTH) {
				off += ((__u32)ext[1] + 2) * 4;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			nh = next;
		}
		if (nh == NEXTHDR_HOP || nh == NEXTHDR_ROUTING || nh == NEXTHDR_DEST ||
		    nh == NEXTHDR_FRAGMENT || nh == NEXTHDR_AUTH)
			return -1; /* more extension headers than we walk */
		f->proto = nh;
	} else {
		return 0;
	}

	if (f->frag == FRAG_LATER)
		return 1; /* no L4 header: ports stay 0 */
	switch (f->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__u16 *ports = data + off;
		if ((void *)(ports + 2) > data_end)
			return -1;
		f->sport = bpf_ntohs(ports[0]);
		f->dport = bpf_ntohs(ports[1]);
		break;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* As Cilium: the ICMP type is the "port"; the echo identifier tells flows apart. */
		__u8 *icmp = data + off;
		if ((void *)(icmp + 8) > data_end)
			return -1;
		f->dport = icmp[0];
		f->icmp_code = icmp[1];
		f->sport = ((__u16)icmp[4] << 8) | icmp[5];
		break;
	}
	default:
		break;
	}
	return 1;
}

/* is_v4_mapped reports an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
static __always_inline int is_v4_mapped(const __u8 *a)
{
	__u64 hi;
	__u32 mid;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&mid, a + 8, 4);
	return hi == 0 && mid == bpf_htonl(0x0000ffff);
}

/* lookup_identity is the remote identity of a 16-byte address. An IPv4-mapped address in an IPv6
 * packet is looked up as its IPv4 address: IPv4 prefixes are stored mapped, so the prefix map
 * already matches it, and the exact map must agree. */
static __always_inline __u32 lookup_identity(const __u8 *addr, int ipv6)
{
	struct ipcache_val *v;
	if (!ipv6 || is_v4_mapped(addr)) {
		__u32 a4;
		__builtin_memcpy(&a4, addr + 12, 4);
		v = bpf_map_lookup_elem(&ceskit_ipcache4, &a4);
	} else {
		struct ipcache_key k;
		__builtin_memcpy(k.addr, addr, 16);
		v = bpf_map_lookup_elem(&ceskit_ipcache, &k);
	}
	if (v)
		return v->identity;
	struct ipcache_lpm_key lk = {.prefixlen = 128};
	__builtin_memcpy(lk.addr, addr, 16);
	v = bpf_map_lookup_elem(&ceskit_ipcache_lpm, &lk);
	if (v)
		return v->identity;
	return 2; /* reserved:world */
}

static __always_inline struct policy_val *lookup_policy(__u32 id, __u8 proto, __u16 port)
{
	struct policy_key k = {
		.ep_id = endpoint_id, .identity = id, .dir = policy_dir, .proto = proto, .port = port,
	};
	struct policy_val *v = bpf_map_lookup_elem(&ceskit_policy, &k);
	if (v)
		return v;
	if (id != 0) {
		k.identity = 0;
		v = bpf_map_lookup_elem(&ceskit_policy, &k);
		if (v)
			return v;
	}
	struct policy_lpm_key lk = {
		.prefixlen = 96, .ep_id = endpoint_id, .identity = id, .dir = policy_dir,
		.proto = proto, .port_be = bpf_htons(port),
	};
	v = bpf_map_lookup_elem(&ceskit_policy_lpm, &lk);
	if (v || id == 0)
		return v;
	lk.identity = 0;
	return bpf_map_lookup_elem(&ceskit_policy_lpm, &lk);
}

static __always_inline int ratelimit_ok(void)
{
	__u32 zero = 0;
	struct ratelimit *rl = bpf_map_lookup_elem(&ceskit_ratelimit, &zero);
	if (!rl)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 cap = event_burst * 1000000000ULL;
	__u64 tokens = rl->tokens + (now - rl->last_ns) * event_rate;
	if (rl->last_ns == 0 || tokens > cap)
		tokens = cap;
	rl->last_ns = now;
	if (tokens < 1000000000ULL) {
		rl->tokens = tokens;
		return 0;
	}
	rl->tokens = tokens - 1000000000ULL;
	return 1;
}

static __always_inline void report(const struct flow *f, __u32 remote, __u8 verdict, __u8 flags,
				   __u32 cookie, __u32 reason, __u8 match_type)
{
	if (!ratelimit_ok()) {
		lost(LOST_RATELIMIT);
		return;
	}
	struct event *e = bpf_ringbuf_reserve(&ceskit_events, sizeof(*e), 0);
	if (!e) {
		lost(LOST_RINGBUF);
		return;
	}
	e->ts = bpf_ktime_get_ns();
	e->ep_id = endpoint_id;
	e->remote_id = remote;
	__builtin_memcpy(e->saddr, f->saddr, 16);
	__builtin_memcpy(e->daddr, f->daddr, 16);
	e->sport = f->sport;
	e->dport = f->dport;
	e->proto = f->proto;
	e->dir = policy_dir;
	e->verdict = verdict;
	e->flags = flags | (f->ipv6 ? EV_F_IPV6 : 0) | (f->frag ? EV_F_FRAGMENT : 0);
	e->cookie = cookie;
	e->reason = reason;
	e->match_type = match_type;
	e->icmp_code = f->icmp_code;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline int ct_hit(struct ct_key *k, __u64 now)
{
	struct ct_val *v = bpf_map_lookup_elem(&ceskit_ct, k);
	if (!v)
		return 0;
	if (now - v->last_seen > ct_timeout_ns) {
		bpf_map_delete_elem(&ceskit_ct, k);
		return 0;
	}
	v->last_seen = now;
	return 1;
}

SEC("tc")
int ceskit_policy_prog(struct __sk_buff *skb)
{
	struct flow f = {};
	int r = parse(skb, &f);
	if (r == 0) {
		count(CNT_PASS_NON_IP);
		return allow_ret;
	}
	if (r < 0) {
		count(CNT_DROP_INVALID);
		return TCX_DROP;
	}

	__u64 now = 0;
	struct ct_key ck = {};
	/* ICMP: only echo is tracked, keyed by identifier and request type, so a reply (0/129)
	 * passes for a tracked request (8/128) and nothing else rides on the identifier. Other ICMP
	 * types go through policy, except "fragmentation needed" / "packet too big", which pass
	 * (as Cilium's allow_icmp_frag_needed) so path-MTU discovery works. */
	int track = 1, reply = 1;
	__u16 ct_sport = f.sport, ct_dport = f.dport, rev_sport = f.dport, rev_dport = f.sport;
	if (f.proto == IPPROTO_ICMP || f.proto == IPPROTO_ICMPV6) {
		int v6 = f.proto == IPPROTO_ICMPV6;
		__u16 req = v6 ? 128 : 8, rep = v6 ? 129 : 0;
		if (allow_icmp_frag_needed && f.frag != FRAG_LATER &&
		    ((!v6 && f.dport == 3 && f.icmp_code == 4) || (v6 && f.dport == 2))) {
			count(CNT_FORWARDED);
			return allow_ret;
		}
		track = f.dport == req;
		reply = f.dport == rep;
		ct_dport = req;
		rev_sport = f.sport;
		rev_dport = req;
	}
	if (use_ct && f.frag != FRAG_LATER) {
		now = bpf_ktime_get_ns();
		__builtin_memcpy(ck.saddr, f.saddr, 16);
		__builtin_memcpy(ck.daddr, f.daddr, 16);
		ck.sport = ct_sport;
		ck.dport = ct_dport;
		ck.ep_id = endpoint_id;
		ck.proto = f.proto;
		ck.dir = policy_dir;
		if (track && ct_hit(&ck, now)) {
			count(CNT_FORWARDED_CT);
			return allow_ret;
		}
		/* A reply of a flow this endpoint allowed in the other direction. */
		if (reply) {
			struct ct_key rk = {};
			__builtin_memcpy(rk.saddr, f.daddr, 16);
			__builtin_memcpy(rk.daddr, f.saddr, 16);
			rk.sport = rev_sport;
			rk.dport = rev_dport;
			rk.ep_id = endpoint_id;
			rk.proto = f.proto;
			rk.dir = policy_dir ^ 1;
			if (ct_hit(&rk, now)) {
				count(CNT_FORWARDED_CT);
				return allow_ret;
			}
		}
	}

	__u32 remote = lookup_identity(policy_dir == DIR_EGRESS ? f.daddr : f.saddr, f.ipv6);
	struct policy_val *pv = lookup_policy(remote, f.proto, f.dport);
	__u8 verdict = VERDICT_DENY, match_type = POLICY_MATCH_NONE;
	__u32 cookie = 0, reason = CNT_DROP_DEFAULT;
	if (pv) {
		verdict = pv->verdict;
		cookie = pv->cookie;
		match_type = pv->match_type;
		if (verdict == VERDICT_DENY && !(pv->flags & POLICY_F_DEFAULT_DENY))
			reason = CNT_DROP_DENY;
	}
	if (verdict == VERDICT_DENY && f.frag == FRAG_LATER)
		reason = CNT_DROP_FRAGMENT;

	if (verdict == VERDICT_DENY) {
		count(reason);
		report(&f, remote, verdict, 0, cookie, reason, match_type);
		return TCX_DROP;
	}
	if (use_ct && track && f.frag != FRAG_LATER) {
		struct ct_val cv = {.last_seen = now, .cookie = cookie};
		bpf_map_update_elem(&ceskit_ct, &ck, &cv, BPF_ANY);
	}
	if (verdict == VERDICT_AUDIT) {
		count(CNT_AUDITED);
		report(&f, remote, verdict, EV_F_AUDIT | EV_F_NEW_FLOW, cookie, CNT_AUDITED, match_type);
	} else {
		count(CNT_FORWARDED);
		if (event_new_flows)
			report(&f, remote, verdict, EV_F_NEW_FLOW, cookie, CNT_FORWARDED, match_type);
	}
	return allow_ret;
}

/* An empty program, for the benchmarks' baseline. */
SEC("tc")
int ceskit_empty(struct __sk_buff *skb)
{
	return allow_ret;
}
