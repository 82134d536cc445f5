// The kvstore's configuration keys.
#include "agent/kvstore/config.h"

namespace cilium::kvstore {

Result<std::map<std::string, std::string>> parseKvstoreOpt(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view one = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    auto eq = one.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return makeError(ErrorCode::kInvalidArgument, "{:?} is not key=value", std::string(one));
    std::string key(one.substr(0, eq));
    if (key != "etcd.config")
      return makeError(ErrorCode::kInvalidArgument, "unknown option {:?} (supported: etcd.config)",
                       key);
    std::string value(one.substr(eq + 1));
    if (value.empty() || value[0] != '/')
      return makeError(ErrorCode::kInvalidArgument, "{}: want an absolute path", key);
    out[key] = value;
  }
  return out;
}

const config::Registry<Config>& configKeys() {
  static const auto* r = [] {
    auto* r = new config::Registry<Config>;
    r->choice("kvstore", "Key-value store shared by the cluster's agents: etcd (\"\": none)",
              &Config::kvstore, {"etcd"})
        .defaultNote("none");
    r->string("kvstore-opt",
              "Key-value store options, e.g. etcd.config=/var/lib/etcd-config/etcd.config",
              &Config::kvstore_opt, [](std::string_view v) -> Status {
                auto m = parseKvstoreOpt(v);
                if (!m.ok()) return m.error();
                return okStatus();
              });
    r->seconds("kvstore-lease-ttl",
               "Seconds the agent's keys (node, endpoints, identities in use) outlive it in the "
               "kvstore",
               &Config::kvstore_lease_ttl, 2, 86400);
    r->seconds("identity-gc-interval",
               "Seconds between passes that delete kvstore identities no node uses (0: off)",
               &Config::identity_gc_interval, 1, 86400, true);
    r->check([](const Config& c) -> Status {
      if (c.kvstore.empty()) return okStatus();
      auto m = parseKvstoreOpt(c.kvstore_opt);
      if (!m.ok() || !m->count("etcd.config"))
        return Error(ErrorCode::kInvalidArgument,
                     "kvstore=etcd needs kvstore-opt etcd.config=<path of the etcd config file>");
      return okStatus();
    });
    return r;
  }();
  return *r;
}

}  // namespace cilium::kvstore
