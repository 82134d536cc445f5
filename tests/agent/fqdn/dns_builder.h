// Builds DNS messages for tests (uncompressed names), so tests say what a message holds.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cilium::fqdn::testing {

class DnsBuilder {
 public:
  DnsBuilder(uint16_t id, bool response, uint8_t rcode = 0) {
    put16(id);
    put16(static_cast<uint16_t>((response ? 0x8180 : 0x0100) | rcode));
    for (int i = 0; i < 4; i++) put16(0);
  }
  DnsBuilder& question(const std::string& name, uint16_t type) {
    putName(name);
    put16(type);
    put16(1);
    bump(4);
    return *this;
  }
  DnsBuilder& a(const std::string& name, const std::string& ip, uint32_t ttl) {
    in_addr a{};
    inet_pton(AF_INET, ip.c_str(), &a);
    auto* b = reinterpret_cast<const uint8_t*>(&a);
    return raw(name, 1, {b[0], b[1], b[2], b[3]}, ttl);
  }
  DnsBuilder& cname(const std::string& name, const std::string& target, uint32_t ttl) {
    std::vector<uint8_t> rdata;
    encodeName(target, rdata);
    return raw(name, 5, rdata, ttl);
  }
  DnsBuilder& raw(const std::string& name, uint16_t type, const std::vector<uint8_t>& rdata,
                  uint32_t ttl = 60) {
    putName(name);
    put16(type);
    put16(1);
    put16(static_cast<uint16_t>(ttl >> 16));
    put16(static_cast<uint16_t>(ttl));
    put16(static_cast<uint16_t>(rdata.size()));
    out_.insert(out_.end(), rdata.begin(), rdata.end());
    bump(6);
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return out_; }

  static void encodeName(const std::string& name, std::vector<uint8_t>& out) {
    size_t start = 0;
    while (start < name.size()) {
      size_t dot = name.find('.', start);
      if (dot == std::string::npos) dot = name.size();
      out.push_back(static_cast<uint8_t>(dot - start));
      out.insert(out.end(), name.begin() + start, name.begin() + dot);
      start = dot + 1;
    }
    out.push_back(0);
  }

 private:
  void put16(uint16_t v) {
    out_.push_back(static_cast<uint8_t>(v >> 8));
    out_.push_back(static_cast<uint8_t>(v));
  }
  void putName(const std::string& n) { encodeName(n, out_); }
  void bump(size_t offset) {  // count field at `offset`
    uint16_t v = static_cast<uint16_t>(out_[offset] << 8 | out_[offset + 1]) + 1;
    out_[offset] = static_cast<uint8_t>(v >> 8);
    out_[offset + 1] = static_cast<uint8_t>(v);
  }
  std::vector<uint8_t> out_;
};

}  // namespace cilium::fqdn::testing
