// The agent's address type beside Boost.Asio's, and the transparent-socket switch, for the L7
// and DNS proxies (both accept connections redirected by the datapath and answer or connect
// onward as the original peer).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include <boost/asio/ip/address.hpp>

#include "agent/common/inet.h"

namespace cilium {

inline boost::asio::ip::address asioAddress(const IpAddr& ip) {
  if (ip.isV4()) return boost::asio::ip::address_v4(ip.v4HostOrder());
  boost::asio::ip::address_v6::bytes_type b;
  std::copy(ip.bytes().begin(), ip.bytes().end(), b.begin());
  return boost::asio::ip::address_v6(b);
}

inline IpAddr fromAsio(const boost::asio::ip::address& a) {
  if (a.is_v4()) return IpAddr::fromHostOrder(a.to_v4().to_uint());
  auto b = a.to_v6().to_bytes();
  return IpAddr::fromBytes(IpFamily::kV6, b.data());
}

// IP_TRANSPARENT / IPV6_TRANSPARENT: bind to or accept for addresses that are not the node's.
// Best effort: without CAP_NET_ADMIN the bind or connect that needs it fails with the error.
inline void setTransparent(int fd, bool v4) {
  int one = 1;
  if (v4)
    ::setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
  else
    ::setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));
}

}  // namespace cilium
