// rtnetlink requests: one socket per call, every request acknowledged.
#include "agent/datapath/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <optional>

#include "agent/common/fd.h"
#include "agent/common/files.h"

namespace cilium::datapath::netlink {
namespace {

// A netlink message under construction, with nested attribute support.
class Message {
 public:
  Message(uint16_t type, uint16_t flags) {
    buf_.resize(NLMSG_HDRLEN);
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  }
  template <typename T>
  T* append(const T& v) {
    size_t off = buf_.size();
    buf_.resize(off + NLMSG_ALIGN(sizeof(T)));
    std::memcpy(buf_.data() + off, &v, sizeof(T));
    return reinterpret_cast<T*>(buf_.data() + off);
  }
  void attr(uint16_t type, const void* data, size_t len) {
    size_t off = buf_.size();
    buf_.resize(off + RTA_ALIGN(RTA_LENGTH(len)));
    auto* rta = reinterpret_cast<rtattr*>(buf_.data() + off);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    if (len != 0) std::memcpy(RTA_DATA(rta), data, len);
  }
  void attrU32(uint16_t type, uint32_t v) { attr(type, &v, sizeof(v)); }
  void attrStr(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  size_t begin(uint16_t type) {
    size_t off = buf_.size();
    attr(type, nullptr, 0);
    return off;
  }
  void end(size_t off) {
    reinterpret_cast<rtattr*>(buf_.data() + off)->rta_len =
        static_cast<uint16_t>(buf_.size() - off);
  }
  std::vector<char>& finish(uint32_t seq) {
    hdr()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    hdr()->nlmsg_seq = seq;
    return buf_;
  }

 private:
  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  std::vector<char> buf_;
};

using OnReply = std::function<void(const nlmsghdr*)>;

// Walks the messages in the `len` bytes at `buf` (one recv()): messages of other requests are
// skipped, DONE and ERROR end the request (their outcome is returned), `on_reply` sees the rest.
// nullopt: the request goes on in the next datagram. Every length is checked before what it
// covers is read, whatever the messages claim.
std::optional<Status> walkReplies(const void* buf, size_t len, uint32_t seq,
                                  const OnReply& on_reply) {
  int rest = static_cast<int>(len);
  for (auto* h = static_cast<const nlmsghdr*>(buf);
       rest > 0 && NLMSG_OK(h, static_cast<unsigned>(rest)); h = NLMSG_NEXT(h, rest)) {
    if (h->nlmsg_seq != seq) continue;
    if (h->nlmsg_type == NLMSG_DONE) return okStatus();
    if (h->nlmsg_type == NLMSG_ERROR) {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
        return makeError(ErrorCode::kInternal, "netlink: truncated error message");
      int error = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      if (error == 0) return okStatus();
      return errnoError(error < 0 && error > -4096 ? -error : EPROTO, "netlink");
    }
    if (on_reply) on_reply(h);
  }
  return std::nullopt;
}

// Sends `msg` and reads replies until the ACK (or the end of a dump). `on_reply` sees every
// non-error message.
Status transact(Message& msg, const OnReply& on_reply = {}) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return errnoError(errno, "netlink socket");
  // A reply that never comes must not hang the agent.
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  static std::atomic<uint32_t> seq{1};
  uint32_t my_seq = seq++;
  auto& buf = msg.finish(my_seq);
  if (::sendto(fd.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) <
      0)
    return errnoError(errno, "netlink send");
  std::vector<char> rx(64 * 1024);
  for (;;) {
    ssize_t n = ::recv(fd.get(), rx.data(), rx.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno, "netlink receive");
    }
    if (auto done = walkReplies(rx.data(), static_cast<size_t>(n), my_seq, on_reply)) return *done;
  }
}

std::string macText(const unsigned char* b, size_t len) {
  std::string s;
  for (size_t i = 0; i < len; i++) s += fmt::format("{}{:02x}", i ? ":" : "", b[i]);
  return s;
}

// A string attribute: up to its NUL, never past its payload.
std::string attrString(const rtattr* a) {
  auto* p = static_cast<const char*>(RTA_DATA(a));
  return std::string(p, ::strnlen(p, RTA_PAYLOAD(a)));
}

// The VXLAN attributes inside IFLA_INFO_DATA: UDP port and collect_md ("external") mode.
void parseVxlan(const rtattr* data, Link& l) {
  int len = static_cast<int>(RTA_PAYLOAD(data));
  for (auto* v = static_cast<const rtattr*>(RTA_DATA(data)); RTA_OK(v, len); v = RTA_NEXT(v, len)) {
    if (v->rta_type == IFLA_VXLAN_PORT && RTA_PAYLOAD(v) >= sizeof(uint16_t)) {
      uint16_t port;
      std::memcpy(&port, RTA_DATA(v), sizeof(port));
      l.vxlan_port = ntohs(port);
    }
    if (v->rta_type == IFLA_VXLAN_COLLECT_METADATA && RTA_PAYLOAD(v) >= 1)
      l.vxlan_external = *static_cast<const uint8_t*>(RTA_DATA(v)) != 0;
  }
}

// A message too short for its ifinfomsg gives an empty Link (ifindex 0).
Link parseLink(const nlmsghdr* h) {
  Link l;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return l;
  auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
  l.ifindex = ifi->ifi_index;
  l.up = (ifi->ifi_flags & IFF_UP) != 0;
  int len = static_cast<int>(IFLA_PAYLOAD(h));
  for (auto* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    switch (a->rta_type) {
      case IFLA_IFNAME: l.name = attrString(a); break;
      case IFLA_LINK_NETNSID: l.peer_in_other_netns = true; break;
      case IFLA_MTU:
        if (RTA_PAYLOAD(a) >= sizeof(uint32_t)) std::memcpy(&l.mtu, RTA_DATA(a), sizeof(uint32_t));
        break;
      case IFLA_ADDRESS:
        l.mac = macText(static_cast<const unsigned char*>(RTA_DATA(a)), RTA_PAYLOAD(a));
        break;
      case IFLA_LINKINFO: {
        int ilen = static_cast<int>(RTA_PAYLOAD(a));
        const rtattr* data = nullptr;
        for (auto* i = static_cast<const rtattr*>(RTA_DATA(a)); RTA_OK(i, ilen);
             i = RTA_NEXT(i, ilen)) {
          if (i->rta_type == IFLA_INFO_KIND) l.kind = attrString(i);
          if (i->rta_type == IFLA_INFO_DATA) data = i;
        }
        if (data != nullptr && l.kind == "vxlan") parseVxlan(data, l);
        break;
      }
      default: break;
    }
  }
  return l;
}

Result<Link> getLink(int ifindex, const std::string& name) {
  // Without NLM_F_ACK a non-dump GET ends with its one reply and no ACK to wait for.
  Message m(RTM_GETLINK, NLM_F_ACK);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  m.append(ifi);
  if (!name.empty()) m.attrStr(IFLA_IFNAME, name);
  std::optional<Link> found;
  Status st = transact(m, [&](const nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK) found = parseLink(h);
  });
  if (!st.ok() || !found) {
    std::string what = name.empty() ? "ifindex " + std::to_string(ifindex) : "'" + name + "'";
    if (!st.ok() && st.error().code() != ErrorCode::kNotFound &&
        st.error().message().find("No such device") == std::string::npos)
      return st.error().withContext("get link " + what);
    return makeError(ErrorCode::kNotFound, "no device {}", what);
  }
  return *found;
}

Status linkChange(int ifindex, const std::function<void(Message&)>& attrs, unsigned flags = 0,
                  unsigned change = 0) {
  Message m(RTM_NEWLINK, NLM_F_ACK);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = flags;
  ifi.ifi_change = change;
  m.append(ifi);
  if (attrs) attrs(m);
  return transact(m);
}

Status addrRequest(uint16_t type, uint16_t flags, int ifindex, uint32_t ip, uint8_t prefix_len) {
  Message m(type, static_cast<uint16_t>(NLM_F_ACK | flags));
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = prefix_len;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  m.append(ifa);
  m.attr(IFA_LOCAL, &ip, 4);
  m.attr(IFA_ADDRESS, &ip, 4);
  return transact(m);
}

// A route of either family, as the request and the dump see it (addresses in network order,
// `len` bytes each; an all-zero gateway or source is none).
struct RouteFields {
  uint8_t family = AF_INET;
  const uint8_t* dst = nullptr;
  const uint8_t* via = nullptr;
  const uint8_t* src = nullptr;
  size_t len = 4;
  uint8_t prefix_len = 0;
  int ifindex = 0;
  uint8_t protocol = kRouteProtocolStatic;
  uint32_t mtu = 0;
};

bool allZero(const uint8_t* p, size_t len) {
  if (p == nullptr) return true;
  for (size_t i = 0; i < len; i++)
    if (p[i] != 0) return false;
  return true;
}

Status routeRequest(uint16_t type, uint16_t flags, const RouteFields& r) {
  const bool gateway = !allZero(r.via, r.len);
  Message m(type, static_cast<uint16_t>(NLM_F_ACK | flags));
  rtmsg rt{};
  rt.rtm_family = r.family;
  rt.rtm_dst_len = r.prefix_len;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = r.protocol;
  rt.rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rt.rtm_type = RTN_UNICAST;
  m.append(rt);
  m.attr(RTA_DST, r.dst, r.len);
  m.attrU32(RTA_OIF, static_cast<uint32_t>(r.ifindex));
  if (gateway) m.attr(RTA_GATEWAY, r.via, r.len);
  if (!allZero(r.src, r.len)) m.attr(RTA_PREFSRC, r.src, r.len);
  if (r.mtu != 0) {
    size_t metrics = m.begin(RTA_METRICS);
    m.attrU32(RTAX_MTU, r.mtu);
    m.end(metrics);
  }
  return transact(m);
}

RouteFields fields(const Route4& r) {
  return RouteFields{AF_INET,
                     reinterpret_cast<const uint8_t*>(&r.dst),
                     reinterpret_cast<const uint8_t*>(&r.via),
                     reinterpret_cast<const uint8_t*>(&r.src),
                     4,
                     r.prefix_len,
                     r.ifindex,
                     r.protocol,
                     r.mtu};
}

RouteFields fields(const Route6& r) {
  return RouteFields{AF_INET6,     r.dst.data(), r.via.data(), r.src.data(), 16,
                     r.prefix_len, r.ifindex,    r.protocol,   r.mtu};
}

// The unicast routes of `family` in the main table marked with `protocol`: `each` gets the
// message and its attributes (dst, gateway, oif, prefsrc), the addresses `len` bytes each.
Status dumpRoutes(uint8_t family, uint8_t protocol,
                  const std::function<void(const rtmsg&, const rtattr* const* attrs)>& each) {
  Message m(RTM_GETROUTE, NLM_F_DUMP);
  rtmsg rt{};
  rt.rtm_family = family;
  m.append(rt);
  return transact(m, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return;
    const auto* msg = static_cast<const rtmsg*>(NLMSG_DATA(h));
    if (msg->rtm_family != family || msg->rtm_protocol != protocol || msg->rtm_type != RTN_UNICAST)
      return;
    uint32_t table = msg->rtm_table;
    const rtattr* attrs[RTA_MAX + 1] = {};
    int len = static_cast<int>(RTM_PAYLOAD(h));
    for (auto* a = RTM_RTA(msg); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
      if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= 4) std::memcpy(&table, RTA_DATA(a), 4);
      if (a->rta_type <= RTA_MAX) attrs[a->rta_type] = a;
    }
    if (table == RT_TABLE_MAIN) each(*msg, attrs);
  });
}

// Copies attribute `type` into `out` when it has `len` bytes.
void copyAttr(const rtattr* const* attrs, int type, void* out, size_t len) {
  const rtattr* a = attrs[type];
  if (a != nullptr && RTA_PAYLOAD(a) >= len) std::memcpy(out, RTA_DATA(a), len);
}

Status ruleRequest(uint16_t type, uint16_t flags, uint32_t mark, uint32_t mask, uint32_t table,
                   uint32_t priority, uint8_t family = AF_INET) {
  Message m(type, static_cast<uint16_t>(NLM_F_ACK | flags));
  fib_rule_hdr fr{};
  fr.family = family;
  fr.table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  fr.action = FR_ACT_TO_TBL;
  m.append(fr);
  m.attrU32(FRA_TABLE, table);
  m.attrU32(FRA_PRIORITY, priority);
  m.attrU32(FRA_FWMARK, mark);
  m.attrU32(FRA_FWMASK, mask);
  return transact(m);
}

Status localRouteRequest(uint16_t type, uint16_t flags, uint32_t table, int ifindex,
                         uint8_t family = AF_INET) {
  Message m(type, static_cast<uint16_t>(NLM_F_ACK | flags));
  rtmsg rt{};
  rt.rtm_family = family;
  rt.rtm_dst_len = 0;
  rt.rtm_table = table < 256 ? static_cast<uint8_t>(table) : static_cast<uint8_t>(RT_TABLE_UNSPEC);
  rt.rtm_protocol = RTPROT_STATIC;
  rt.rtm_scope = RT_SCOPE_HOST;
  rt.rtm_type = RTN_LOCAL;
  m.append(rt);
  m.attrU32(RTA_TABLE, table);
  std::array<uint8_t, 16> any{};
  m.attr(RTA_DST, any.data(), family == AF_INET6 ? 16 : 4);
  m.attrU32(RTA_OIF, static_cast<uint32_t>(ifindex));
  return transact(m);
}

static_assert(kRouteProtocolStatic == RTPROT_STATIC);

bool isAbsent(const Status& st) {
  return !st.ok() && (st.error().code() == ErrorCode::kNotFound ||
                      st.error().message().find("No such") != std::string::npos);
}

}  // namespace

Result<Link> linkByName(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a device name", name);
  return getLink(0, name);
}

Result<Link> linkByIndex(int ifindex) {
  if (ifindex <= 0) return makeError(ErrorCode::kInvalidArgument, "bad ifindex {}", ifindex);
  return getLink(ifindex, "");
}

Result<std::vector<Link>> listLinks() {
  Message m(RTM_GETLINK, NLM_F_DUMP);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.append(ifi);
  std::vector<Link> out;
  CILIUM_RETURN_IF_ERROR(transact(m, [&](const nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK) out.push_back(parseLink(h));
  }));
  return out;
}

Status createVeth(const std::string& name, const std::string& peer, int peer_netns_fd) {
  if (name.empty() || name.size() >= IFNAMSIZ || peer.empty() || peer.size() >= IFNAMSIZ)
    return makeError(ErrorCode::kInvalidArgument, "veth names '{}'/'{}' must be 1..15 characters",
                     name, peer);
  Message m(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.append(ifi);
  m.attrStr(IFLA_IFNAME, name);
  size_t linkinfo = m.begin(IFLA_LINKINFO);
  m.attrStr(IFLA_INFO_KIND, "veth");
  size_t data = m.begin(IFLA_INFO_DATA);
  size_t peer_info = m.begin(VETH_INFO_PEER);
  ifinfomsg pifi{};
  pifi.ifi_family = AF_UNSPEC;
  m.append(pifi);
  m.attrStr(IFLA_IFNAME, peer);
  if (peer_netns_fd >= 0) m.attrU32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.end(peer_info);
  m.end(data);
  m.end(linkinfo);
  auto st = transact(m);
  if (!st.ok()) return st.error().withContext("create veth " + name);
  return okStatus();
}

Status createVxlanExternal(const std::string& name, uint16_t port, uint32_t mtu) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a device name", name);
  if (port == 0) return makeError(ErrorCode::kInvalidArgument, "VXLAN port must not be 0");
  Message m(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.append(ifi);
  m.attrStr(IFLA_IFNAME, name);
  if (mtu != 0) m.attrU32(IFLA_MTU, mtu);
  size_t linkinfo = m.begin(IFLA_LINKINFO);
  m.attrStr(IFLA_INFO_KIND, "vxlan");
  size_t data = m.begin(IFLA_INFO_DATA);
  const uint8_t on = 1, off = 0;
  const uint16_t port_be = htons(port);
  m.attr(IFLA_VXLAN_COLLECT_METADATA, &on, 1);  // remote and VNI come from each packet
  m.attr(IFLA_VXLAN_PORT, &port_be, sizeof(port_be));
  m.attr(IFLA_VXLAN_LEARNING, &off, 1);  // nothing to learn: programs choose every remote
  m.end(data);
  m.end(linkinfo);
  auto st = transact(m);
  if (!st.ok()) return st.error().withContext("create vxlan " + name);
  return okStatus();
}

Status deleteLink(int ifindex) {
  Message m(RTM_DELLINK, NLM_F_ACK);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  m.append(ifi);
  auto st = transact(m);
  if (st.ok() || isAbsent(st)) return okStatus();
  return st.error().withContext(fmt::format("delete link {}", ifindex));
}

Status setLinkUp(int ifindex, bool up) {
  auto st = linkChange(ifindex, {}, up ? IFF_UP : 0, IFF_UP);
  if (!st.ok()) return st.error().withContext(fmt::format("set link {} up={}", ifindex, up));
  return okStatus();
}

Status setMtu(int ifindex, uint32_t mtu) {
  auto st = linkChange(ifindex, [&](Message& m) { m.attrU32(IFLA_MTU, mtu); });
  if (!st.ok()) return st.error().withContext(fmt::format("set link {} mtu {}", ifindex, mtu));
  return okStatus();
}

Status setLinkNoArp(int ifindex) {
  auto st = linkChange(ifindex, {}, IFF_NOARP, IFF_NOARP);
  if (!st.ok()) return st.error().withContext(fmt::format("set link {} noarp", ifindex));
  return okStatus();
}

Status renameLink(int ifindex, const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return makeError(ErrorCode::kInvalidArgument, "'{}' is not a device name", name);
  auto st = linkChange(ifindex, [&](Message& m) { m.attrStr(IFLA_IFNAME, name); });
  if (!st.ok()) return st.error().withContext(fmt::format("rename link {} to {}", ifindex, name));
  return okStatus();
}

Status moveToNetns(int ifindex, int netns_fd) {
  auto st = linkChange(
      ifindex, [&](Message& m) { m.attrU32(IFLA_NET_NS_FD, static_cast<uint32_t>(netns_fd)); });
  if (!st.ok()) return st.error().withContext(fmt::format("move link {} to netns", ifindex));
  return okStatus();
}

Status addAddress4(int ifindex, uint32_t ip, uint8_t prefix_len) {
  auto st = addrRequest(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, ip, prefix_len);
  if (!st.ok()) return st.error().withContext(fmt::format("add address to link {}", ifindex));
  return okStatus();
}

Status deleteAddress4(int ifindex, uint32_t ip, uint8_t prefix_len) {
  auto st = addrRequest(RTM_DELADDR, 0, ifindex, ip, prefix_len);
  if (st.ok() || isAbsent(st) || st.error().message().find("Cannot assign") != std::string::npos)
    return okStatus();
  return st.error().withContext(fmt::format("delete address from link {}", ifindex));
}

Status addAddress6(int ifindex, const Ip6& ip, uint8_t prefix_len) {
  Message m(RTM_NEWADDR, static_cast<uint16_t>(NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE));
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET6;
  ifa.ifa_prefixlen = prefix_len;
  ifa.ifa_flags = IFA_F_NODAD;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(ifindex);
  m.append(ifa);
  m.attr(IFA_LOCAL, ip.data(), ip.size());
  m.attr(IFA_ADDRESS, ip.data(), ip.size());
  auto st = transact(m);
  if (!st.ok()) return st.error().withContext(fmt::format("add IPv6 address to link {}", ifindex));
  return okStatus();
}

Status replaceRoute6(const Ip6& dst, uint8_t prefix_len, int ifindex, const Ip6& via) {
  return replaceRoute6(Route6{dst, prefix_len, ifindex, via});
}

Status replaceRoute6(const Route6& r) {
  auto st = routeRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, fields(r));
  if (!st.ok())
    return st.error().withContext(fmt::format("replace IPv6 route via link {}", r.ifindex));
  return okStatus();
}

Status deleteRoute6(const Ip6& dst, uint8_t prefix_len, int ifindex) {
  return deleteRoute6(Route6{dst, prefix_len, ifindex});
}

Status deleteRoute6(const Route6& r) {
  Route6 k = r;
  k.src = {};
  k.mtu = 0;
  auto st = routeRequest(RTM_DELROUTE, 0, fields(k));
  if (st.ok() || isAbsent(st)) return okStatus();
  return st.error().withContext(fmt::format("delete IPv6 route via link {}", r.ifindex));
}

Result<std::vector<Route6>> routes6(uint8_t protocol) {
  std::vector<Route6> out;
  CILIUM_RETURN_IF_ERROR(
      dumpRoutes(AF_INET6, protocol, [&](const rtmsg& msg, const rtattr* const* a) {
        Route6 r;
        r.prefix_len = msg.rtm_dst_len;
        r.protocol = msg.rtm_protocol;
        copyAttr(a, RTA_DST, r.dst.data(), 16);
        copyAttr(a, RTA_GATEWAY, r.via.data(), 16);
        copyAttr(a, RTA_OIF, &r.ifindex, 4);
        copyAttr(a, RTA_PREFSRC, r.src.data(), 16);
        out.push_back(r);
      }));
  return out;
}

namespace {

// Walks the address dump of one family on one device (0: every device), calling
// each(message, attribute payload) for every attribute `type` that is `size` bytes long.
template <class Each>
Status forEachAddress(uint8_t family, int ifindex, uint16_t type, size_t size, Each each) {
  Message m(RTM_GETADDR, NLM_F_DUMP);
  ifaddrmsg ifa{};
  ifa.ifa_family = family;
  m.append(ifa);
  return transact(m, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
    const auto* msg = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    // The dump ignores the index filter on older kernels: filter here.
    if (msg->ifa_family != family || (ifindex != 0 && static_cast<int>(msg->ifa_index) != ifindex))
      return;
    int len = static_cast<int>(IFA_PAYLOAD(h));
    for (auto* a = IFA_RTA(msg); RTA_OK(a, len); a = RTA_NEXT(a, len))
      if (a->rta_type == type && RTA_PAYLOAD(a) == size) each(*msg, RTA_DATA(a));
  });
}

}  // namespace

Result<std::vector<Address4>> addresses4(int ifindex) {
  std::vector<Address4> out;
  CILIUM_RETURN_IF_ERROR(
      forEachAddress(AF_INET, ifindex, IFA_LOCAL, 4, [&](const ifaddrmsg& msg, const void* data) {
        Address4 addr;
        std::memcpy(&addr.ip, data, 4);
        addr.prefix_len = msg.ifa_prefixlen;
        addr.ifindex = static_cast<int>(msg.ifa_index);
        out.push_back(addr);
      }));
  return out;
}

Result<std::vector<Address6>> addresses6(int ifindex) {
  std::vector<Address6> out;
  // IPv6 reports a device's own address as IFA_ADDRESS (IFA_LOCAL only on point-to-point).
  CILIUM_RETURN_IF_ERROR(
      forEachAddress(AF_INET6, ifindex, IFA_ADDRESS, 16, [&](const ifaddrmsg& msg, const void* data) {
        Address6 addr;
        std::memcpy(addr.ip.data(), data, addr.ip.size());
        addr.prefix_len = msg.ifa_prefixlen;
        addr.ifindex = static_cast<int>(msg.ifa_index);
        out.push_back(addr);
      }));
  return out;
}

Status replaceRoute4(uint32_t dst, uint8_t prefix_len, int ifindex, uint32_t via,
                     uint8_t protocol) {
  return replaceRoute4(Route4{dst, prefix_len, ifindex, via, protocol});
}

Status replaceRoute4(const Route4& r) {
  auto st = routeRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, fields(r));
  if (!st.ok()) return st.error().withContext(fmt::format("replace route via link {}", r.ifindex));
  return okStatus();
}

Status deleteRoute4(uint32_t dst, uint8_t prefix_len, int ifindex, uint32_t via,
                    uint8_t protocol) {
  auto st = routeRequest(RTM_DELROUTE, 0, fields(Route4{dst, prefix_len, ifindex, via, protocol}));
  if (st.ok() || isAbsent(st)) return okStatus();
  return st.error().withContext(fmt::format("delete route via link {}", ifindex));
}

Result<std::vector<Route4>> routes4(uint8_t protocol) {
  std::vector<Route4> out;
  CILIUM_RETURN_IF_ERROR(
      dumpRoutes(AF_INET, protocol, [&](const rtmsg& msg, const rtattr* const* a) {
        Route4 r;
        r.prefix_len = msg.rtm_dst_len;
        r.protocol = msg.rtm_protocol;
        copyAttr(a, RTA_DST, &r.dst, 4);
        copyAttr(a, RTA_GATEWAY, &r.via, 4);
        copyAttr(a, RTA_OIF, &r.ifindex, 4);
        copyAttr(a, RTA_PREFSRC, &r.src, 4);
        out.push_back(r);
      }));
  return out;
}

namespace {
uint8_t afOf(IpFamily f) { return f == IpFamily::kV6 ? AF_INET6 : AF_INET; }
}  // namespace

Status ensureFwmarkRule(IpFamily family, uint32_t mark, uint32_t mask, uint32_t table,
                        uint32_t priority) {
  // NLM_F_EXCL: the kernel refuses a second identical rule (EEXIST) instead of adding it.
  auto st = ruleRequest(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, mark, mask, table, priority,
                        afOf(family));
  if (st.ok() || st.error().code() == ErrorCode::kAlreadyExists) return okStatus();
  return st.error().withContext(fmt::format("add {} rule fwmark {:#x}/{:#x} table {}",
                                            ipFamilyName(family), mark, mask, table));
}

Status deleteFwmarkRule(IpFamily family, uint32_t mark, uint32_t mask, uint32_t table,
                        uint32_t priority) {
  auto st = ruleRequest(RTM_DELRULE, 0, mark, mask, table, priority, afOf(family));
  if (st.ok() || isAbsent(st)) return okStatus();
  return st.error().withContext(
      fmt::format("delete {} rule fwmark {:#x}/{:#x}", ipFamilyName(family), mark, mask));
}

Status replaceLocalDefaultRoute(IpFamily family, uint32_t table, int ifindex) {
  auto st =
      localRouteRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, table, ifindex, afOf(family));
  if (!st.ok())
    return st.error().withContext(
        fmt::format("replace {} local route in table {}", ipFamilyName(family), table));
  return okStatus();
}

Status deleteLocalDefaultRoute(IpFamily family, uint32_t table, int ifindex) {
  auto st = localRouteRequest(RTM_DELROUTE, 0, table, ifindex, afOf(family));
  if (st.ok() || isAbsent(st)) return okStatus();
  return st.error().withContext(
      fmt::format("delete {} local route in table {}", ipFamilyName(family), table));
}

Status ensureFwmarkRule4(uint32_t mark, uint32_t mask, uint32_t table, uint32_t priority) {
  return ensureFwmarkRule(IpFamily::kV4, mark, mask, table, priority);
}

Status deleteFwmarkRule4(uint32_t mark, uint32_t mask, uint32_t table, uint32_t priority) {
  return deleteFwmarkRule(IpFamily::kV4, mark, mask, table, priority);
}

Status replaceLocalDefaultRoute4(uint32_t table, int ifindex) {
  return replaceLocalDefaultRoute(IpFamily::kV4, table, ifindex);
}

Status deleteLocalDefaultRoute4(uint32_t table, int ifindex) {
  return deleteLocalDefaultRoute(IpFamily::kV4, table, ifindex);
}

Status setDeviceSysctl(const std::string& procfs, const std::string& dev, const std::string& key,
                       const std::string& value) {
  if (procfs.empty() || procfs[0] != '/')
    return makeError(ErrorCode::kInvalidArgument, "procfs '{}' is not an absolute path", procfs);
  if (dev.empty() || dev == "all" || dev == "default" || dev.find('/') != std::string::npos ||
      key.find('/') != std::string::npos)
    return makeError(ErrorCode::kInvalidArgument, "refusing sysctl for device '{}' key '{}'", dev,
                     key);
  std::string path =
      procfs + (procfs.back() == '/' ? "" : "/") + "sys/net/ipv4/conf/" + dev + "/" + key;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errnoError(errno, "open " + path);
  if (::write(fd.get(), value.data(), value.size()) < 0) return errnoError(errno, "write " + path);
  return okStatus();
}

}  // namespace cilium::datapath::netlink
