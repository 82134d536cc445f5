/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Drop reasons, with Cilium's numbers: programs return -DROP_x; metrics, events and Hubble
 * (flow.proto DropReason) use the positive value. Twins: agent/hubble decoder, the metrics
 * exporter's reason names (agent/datapath dropReasonName()).
 */
#pragma once

#define DROP_INVALID_SIP 132
#define DROP_POLICY 133          /* "Policy denied": no rule allows it */
#define DROP_INVALID 134
#define DROP_CT_INVALID_HDR 135
/* a DSR packet that would exceed the MTU of the way to the backend with the option */
#define DROP_FRAG_NEEDED 136
#define DROP_CT_UNKNOWN_PROTO 137
#define DROP_UNKNOWN_L3 139
#define DROP_MISSED_TAIL_CALL 140
#define DROP_WRITE_ERROR 141
#define DROP_UNKNOWN_L4 142
#define DROP_UNKNOWN_ICMP_CODE 143
#define DROP_UNKNOWN_ICMP_TYPE 144
#define DROP_NO_TUNNEL_KEY 147   /* a packet on the overlay device without tunnel metadata */
#define DROP_UNKNOWN_TARGET 150
#define DROP_UNROUTABLE 151
#define DROP_NO_LXC 152          /* from the overlay to an address that is no local endpoint */
#define DROP_CSUM_L3 153
#define DROP_CSUM_L4 154
#define DROP_CT_CREATE_FAILED 155
#define DROP_INVALID_EXTHDR 156 /* an IPv6 extension header chain too long or truncated */
#define DROP_FRAG_NOSUPPORT 157
#define DROP_NO_SERVICE 158
#define DROP_UNSUPPORTED_L2 166
#define DROP_NAT_NO_MAPPING 167 /* "No mapping for NAT masquerade": no free node port */
#define DROP_NAT_UNSUPP_PROTO 168 /* a pod's packet to the outside that masquerade cannot NAT */
#define DROP_NO_FIB 169
#define DROP_INVALID_IDENTITY 171
#define DROP_UNKNOWN_SENDER 172
/* L7 redirection (lib/proxy.h): Hubble's SOCKET_LOOKUP_FAILED, SOCKET_ASSIGN_FAILED, ... */
#define DROP_PROXY_LOOKUP_FAILED 178 /* no proxy listens on the rule's proxy port: fail closed */
#define DROP_PROXY_SET_FAILED 179
#define DROP_PROXY_UNKNOWN_PROTO 180
#define DROP_POLICY_DENY 181     /* "Policy denied by denylist": an explicit deny rule */
#define DROP_TTL_EXCEEDED 196
#define DROP_HOST_NOT_READY 202
#define DROP_EP_NOT_READY 203    /* no endpoint or no policy programmed for this device yet */

/* Source file ids for the drop `file` field (Cilium's numbers; agent/dbg sourceFileName()). */
#define DROP_FILE_BPF_HOST 1
#define DROP_FILE_BPF_LXC 2
#define DROP_FILE_BPF_OVERLAY 3
#define DROP_FILE_BPF_XDP 4
#define DROP_FILE_BPF_SOCK 5
