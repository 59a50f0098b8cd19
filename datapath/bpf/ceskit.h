/* SPDX-License-Identifier: Apache-2.0 */
/* Map layouts shared by ceskit.c and the Go side (bpf2go generates the Go structs). */
#pragma once

#include <linux/types.h>

/* tcx return codes (include/uapi/linux/bpf.h since 6.6; Debian's linux-libc-dev 6.1 lacks them). */
#define TCX_NEXT -1
#define TCX_PASS 0
#define TCX_DROP 2

/* Directions, relative to the endpoint. */
#define DIR_INGRESS 0
#define DIR_EGRESS 1

/* Verdicts stored in policy values and reported in events. */
#define VERDICT_DENY 0
#define VERDICT_ALLOW 1
#define VERDICT_AUDIT 2

/* policy_val.flags */
#define POLICY_F_DEFAULT_DENY 1 /* a materialised "no entry": default deny, not an explicit deny */

/* policy_val.match_type and event.match_type: what the deciding entry matches on, numbered as
 * Cilium's PolicyMatch* (pkg/monitor/api) and datapath.MatchType. */
#define POLICY_MATCH_NONE 0       /* no entry: default deny */
#define POLICY_MATCH_L3_ONLY 1    /* an identity, every protocol */
#define POLICY_MATCH_L3_L4 2      /* an identity and ports */
#define POLICY_MATCH_L4_ONLY 3    /* ports, any identity */
#define POLICY_MATCH_ALL 4        /* any identity, every protocol */
#define POLICY_MATCH_L3_PROTO 5   /* an identity and a protocol, every port */
#define POLICY_MATCH_PROTO_ONLY 6 /* a protocol, any identity, every port */

/* Counter reasons. Keep in sync with datapath.Reason. ceskit_counters (per CPU) has one counter
 * per direction and reason, at dir * CNT_MAX + reason. */
#define CNT_FORWARDED 0       /* allowed by policy (new flow) */
#define CNT_FORWARDED_CT 1    /* allowed by conntrack (established or reply) */
#define CNT_AUDITED 2         /* would be denied, allowed by audit */
#define CNT_DROP_DEFAULT 3    /* no entry: default deny */
#define CNT_DROP_DENY 4       /* explicit deny */
#define CNT_DROP_INVALID 5    /* malformed or truncated IP packet */
#define CNT_DROP_FRAGMENT 6   /* non-first fragment no entry allows */
#define CNT_PASS_NON_IP 7     /* not IPv4/IPv6: passed untouched */
#define CNT_MAX 8
#define CNT_ENTRIES (2 * CNT_MAX)

/* Lost-event counters (ceskit_lost, per CPU). */
#define LOST_RINGBUF 0   /* ring buffer full */
#define LOST_RATELIMIT 1 /* over the per-CPU event rate */
#define LOST_MAX 2

/* Addresses are 16 bytes; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
struct ipcache_key {
	__u8 addr[16];
};

struct ipcache_lpm_key {
	__u32 prefixlen; /* bits of addr, 0..128 (IPv4: 96 + prefix) */
	__u8 addr[16];
};

struct ipcache_val {
	__u32 identity;
	__u32 flags;
};

/* Exact policy entries: one endpoint, one remote identity (0 = any), one port. */
struct policy_key {
	__u32 ep_id;
	__u32 identity;
	__u8 dir;
	__u8 proto;
	__u16 port; /* host byte order */
};

/* Prefix policy entries: port ranges, protocol-only and any-protocol keys. The prefix covers
 * ep_id, identity and dir (72 bits) always, proto (8 bits) unless any-protocol, and 0..16 bits of
 * port_be. */
struct policy_lpm_key {
	__u32 prefixlen;
	__u32 ep_id;
	__u32 identity;
	__u8 dir;
	__u8 proto;
	__u16 port_be; /* network byte order, so prefixes are port ranges */
};

struct policy_val {
	__u8 verdict;
	__u8 flags;
	__u8 match_type; /* POLICY_MATCH_* of the entry the answer comes from */
	__u8 pad;
	__u32 cookie; /* names the rule (datapath.Entry.Cookie) */
};

/* Connection tracking: one entry per endpoint, direction and 5-tuple of an allowed flow. */
struct ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 ep_id;
	__u8 proto;
	__u8 dir;
	__u16 pad;
};

struct ct_val {
	__u64 last_seen; /* bpf_ktime_get_ns */
	__u32 cookie;
	__u32 flags;
};

/* event.flags */
#define EV_F_AUDIT 1
#define EV_F_IPV6 2
#define EV_F_FRAGMENT 4
#define EV_F_NEW_FLOW 8

struct event {
	__u64 ts;
	__u32 ep_id;
	__u32 remote_id;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 dir;
	__u8 verdict;
	__u8 flags;
	__u32 cookie;
	__u16 reason;    /* CNT_*, without the direction */
	__u8 match_type; /* POLICY_MATCH_* */
	__u8 icmp_code;  /* ICMP and ICMPv6: the code (dport is the type) */
};

struct ratelimit {
	__u64 tokens; /* in events * 1e9 (token-nanoseconds) */
	__u64 last_ns;
};
