// Fuzz target: what other nodes (or anyone with write access to etcd) put in the kvstore, as the
// agent decodes it: node keys (nodeFromJson), ipcache pairs (ipPairFromJson), identity labels
// (labelsOfSortedList), and the etcd.config file (parseEtcdConfig). The first byte picks the
// parser. Beyond "never crash": errors are kInvalidArgument with a message, and what is accepted
// survives its own round trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/kvstore/cluster.h"
#include "agent/kvstore/etcd.h"
#include "agent/kvstore/identities.h"

namespace {
void checkError(const cilium::Error& e) {
  if (e.message().empty()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cilium::kvstore;
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto n = nodeFromJson(text);
      if (!n.ok()) return checkError(n.error()), 0;
      auto back = nodeFromJson(nodeToJson(*n, "default"));
      if (!back.ok()) std::abort();
      // Only the first pod CIDR and health address of each family are written.
      if (back->name != n->name || back->addresses != n->addresses || back->boot_id != n->boot_id)
        std::abort();
      break;
    }
    case 1: {
      auto p = ipPairFromJson(text);
      if (!p.ok()) return checkError(p.error()), 0;
      auto back = ipPairFromJson(ipPairToJson(*p));
      if (!back.ok() || !(*back == *p)) std::abort();
      break;
    }
    case 2: {
      auto l = labelsOfSortedList(text);
      if (!l.ok()) return checkError(l.error()), 0;
      if (l->empty()) std::abort();
      auto again = labelsOfSortedList(l->sortedList());
      if (!again.ok() || !(*again == *l)) std::abort();
      break;
    }
    case 3: {
      auto c = parseEtcdConfig(text);
      if (!c.ok()) return checkError(c.error()), 0;
      if (c->endpoints.empty()) std::abort();
      break;
    }
  }
  return 0;
}
