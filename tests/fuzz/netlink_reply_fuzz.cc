// Fuzz target: rtnetlink replies as agent/datapath/netlink.cc reads them by hand: walkReplies()
// over one received datagram (the NLMSG_OK/NLMSG_NEXT walk, sequence numbers, DONE and ERROR),
// handing every RTM_NEWLINK to parseLink()'s attribute walk, as getLink() and listLinks() do.
// The kernel is the peer, so the input is trusted in practice; the walk is still hand-written
// pointer arithmetic, and this checks that no length a message or attribute claims makes it read
// outside the received bytes.
//
// walkReplies and parseLink are internal to netlink.cc, so this file compiles netlink.cc into
// itself (and links cilium_common, not cilium_datapath, so nothing is defined twice).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "agent/datapath/netlink.cc"  // NOLINT(bugprone-suspicious-include)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An aligned copy of exactly the received bytes (recv() fills an aligned buffer).
  std::vector<uint32_t> words((size + 3) / 4);
  if (size > 0) std::memcpy(words.data(), data, size);
  namespace nl = cilium::datapath::netlink;
  // Sequence 1, as in the recorded dumps of the seed corpus.
  auto done = nl::walkReplies(words.data(), size, 1, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    auto link = nl::parseLink(h);
    if (link.name.size() > size || link.kind.size() > size) std::abort();
  });
  if (done && !done->ok() && done->error().message().empty()) std::abort();
  return 0;
}
