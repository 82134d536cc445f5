// Builds Ethernet/IPv4/IPv6/TCP/UDP/ICMP/ICMPv6 packets with correct lengths and checksums for
// BPF_PROG_TEST_RUN, and parses the headers of packets a program returns.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cilium::testing {

using Mac = std::array<uint8_t, 6>;

uint32_t ipv4(std::string_view dotted);  // host byte order
std::string ipv4String(uint32_t host_order);
Mac mac(std::string_view colon_hex);

namespace tcp {
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
}

class PacketBuilder {
 public:
  PacketBuilder& eth(Mac src, Mac dst);
  PacketBuilder& ipv4(std::string_view src, std::string_view dst, uint8_t ttl = 64);
  // An IPv6 packet instead (no extension headers); `ttl` is the hop limit.
  PacketBuilder& ipv6(std::string_view src, std::string_view dst, uint8_t hop_limit = 64);
  // IPv4 or IPv6 by the form of `src`, so that tests can run over either family.
  PacketBuilder& ip(std::string_view src, std::string_view dst, uint8_t ttl = 64);
  PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint8_t flags, uint32_t seq = 1000,
                     uint32_t ack = 0);
  PacketBuilder& udp(uint16_t sport, uint16_t dport);
  // ICMP after ipv4(), ICMPv6 after ipv6() (the caller picks the family's types).
  PacketBuilder& icmp(uint8_t type, uint8_t code, uint16_t id = 0, uint16_t seq = 0);
  // Echo request/reply of the packet's family (ICMP 8/0, ICMPv6 128/129).
  PacketBuilder& echoRequest(uint16_t id, uint16_t seq = 0);
  PacketBuilder& echoReply(uint16_t id, uint16_t seq = 0);
  // After ipv6(): a neighbour solicitation for `target` with a source link-layer address option
  // (`sll`), as Linux sends it (hop limit 255 is the caller's ipv6() argument).
  // An all-zero `sll` leaves the option out.
  PacketBuilder& neighborSolicit(std::string_view target, Mac sll = {});
  // An ICMP error (type/code) quoting `inner` (an IPv4 packet without Ethernet header); after
  // ipv6(), an ICMPv6 error quoting an IPv6 packet.
  PacketBuilder& icmpError(uint8_t type, uint8_t code, const std::vector<uint8_t>& inner);
  PacketBuilder& protocol(uint8_t proto);  // a bare IPv4 protocol number with no L4 header
  PacketBuilder& payload(std::string_view bytes);
  PacketBuilder& payload(size_t n, uint8_t fill = 0xab);
  // Sets IPv4 flags/fragment offset (host order, e.g. 0x2000 = more fragments).
  PacketBuilder& fragment(uint16_t frag_field);
  // IPv4 options after the fixed header, zero-padded to whole words (IHL follows).
  PacketBuilder& ipOptions(std::vector<uint8_t> bytes);

  std::vector<uint8_t> build() const;
  // The IPv4 packet without the Ethernet header.
  std::vector<uint8_t> buildL3() const;

 private:
  Mac src_mac_{0x02, 0, 0, 0, 0, 1}, dst_mac_{0x02, 0, 0, 0, 0, 2};
  uint32_t saddr_ = 0, daddr_ = 0;
  bool v6_ = false;
  std::array<uint8_t, 16> saddr6_{}, daddr6_{};
  uint8_t ttl_ = 64;
  uint16_t frag_ = 0;
  uint8_t proto_ = 0;
  std::vector<uint8_t> options_;
  std::vector<uint8_t> l4_;  // header only; checksum filled in build()
  std::vector<uint8_t> payload_;
};

struct ParsedPacket {
  uint16_t eth_proto = 0;
  Mac src_mac{}, dst_mac{};
  uint32_t saddr = 0, daddr = 0;  // host order
  uint8_t proto = 0, ttl = 0;
  uint16_t sport = 0, dport = 0;  // TCP/UDP
  uint8_t tcp_flags = 0;
  uint8_t icmp_type = 0, icmp_code = 0;
  bool ip_csum_ok = false, l4_csum_ok = false;
  uint16_t tot_len = 0;             // the IPv4 header's
  std::string src6, dst6;           // IPv6 (eth_proto 0x86dd): the addresses, textual; ttl is
                                    // the hop limit, ip_csum_ok true
  std::vector<uint8_t> l4;          // IPv6: the upper-layer bytes
  std::vector<uint8_t> ip_options;  // what follows the fixed 20-byte header, up to IHL
};

std::optional<ParsedPacket> parsePacket(const std::vector<uint8_t>& frame);

// A parsed packet's source and destination address as text, either family.
std::string srcOf(const ParsedPacket& p);
std::string dstOf(const ParsedPacket& p);

}  // namespace cilium::testing
