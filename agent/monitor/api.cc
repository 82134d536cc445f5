// Monitor events for the REST API and the streaming handler.
#include "agent/monitor/api.h"

#include <arpa/inet.h>

#include <condition_variable>
#include <ctime>
#include <deque>
#include <mutex>
#include <set>

#include "agent/datapath/maps.h"
#include "agent/datapath/monitor.h"

namespace cilium::monitor {
namespace {

std::string protoName(uint8_t proto) {
  switch (proto) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    default: return std::to_string(proto);
  }
}

std::string tcpFlags(uint8_t f) {
  static constexpr std::pair<uint8_t, const char*> kNames[] = {
      {0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"}, {0x08, "PSH"}, {0x20, "URG"}};
  std::string out;
  for (auto [bit, name] : kNames) {
    if ((f & bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string timestamp(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  ::gmtime_r(&secs, &t);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &t);
  return fmt::format("{}.{:09d}Z", buf, ns % 1'000'000'000);
}

int64_t bootOffsetNs() {
  timespec rt{}, mono{};
  ::clock_gettime(CLOCK_REALTIME, &rt);
  ::clock_gettime(CLOCK_MONOTONIC, &mono);
  return (static_cast<int64_t>(rt.tv_sec) - mono.tv_sec) * 1'000'000'000 +
         (rt.tv_nsec - mono.tv_nsec);
}

struct Filter {
  std::set<std::string> types;
  std::optional<int64_t> from, to, related;

  bool accepts(const api::MonitorEvent& e) const {
    if (!types.empty() && types.count(e.type) == 0) return false;
    if (from && e.source != *from) return false;
    if (to && e.dst_endpoint != *to && !(e.direction == "ingress" && e.source == *to)) return false;
    if (related && e.source != *related && e.dst_endpoint != *related) return false;
    return true;
  }
};

// One client's queue, fed by the hub's thread.
class ClientStream final : public api::StreamSource {
 public:
  ClientStream(EventHub& hub, Filter filter) : filter_(std::move(filter)), offset_(bootOffsetNs()) {
    sub_ = hub.subscribe([this](const cilium_event& ev) { push(ev); });
  }
  ~ClientStream() override { sub_.reset(); }

  std::optional<api::Json> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || lost_ != 0; });
    if (lost_ != 0) {
      api::MonitorEvent lost;
      lost.type = "lost";
      lost.lost = static_cast<int64_t>(lost_);
      lost_ = 0;
      return api::encode(lost);
    }
    while (!queue_.empty()) {
      cilium_event ev = queue_.front();
      queue_.pop_front();
      lock.unlock();
      api::MonitorEvent e = toApiEvent(ev, offset_);
      if (filter_.accepts(e)) return api::encode(e);
      lock.lock();
    }
    return std::nullopt;
  }

 private:
  void push(const cilium_event& ev) {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kClientQueue) {
      lost_++;
    } else {
      queue_.push_back(ev);
    }
    cv_.notify_one();
  }

  Filter filter_;
  int64_t offset_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<cilium_event> queue_;
  uint64_t lost_ = 0;
  EventHub::Subscription sub_;
};

}  // namespace

api::MonitorEvent toApiEvent(const cilium_event& ev, int64_t boot_offset_ns) {
  api::MonitorEvent e;
  e.type = std::string(datapath::eventTypeName(ev.type));
  // A corrupted record's time must not overflow: it saturates (and reads as absurd).
  int64_t wall_ns = 0;
  if (__builtin_add_overflow(static_cast<int64_t>(ev.ktime_ns), boot_offset_ns, &wall_ns))
    wall_ns = boot_offset_ns < 0 ? INT64_MIN : INT64_MAX;
  e.timestamp = timestamp(wall_ns);
  e.source = ev.source;
  e.ifindex = ev.ifindex;
  e.length = ev.len_orig;
  e.src_identity = ev.src_identity;
  e.dst_identity = ev.dst_identity;
  e.dst_endpoint = ev.dst_id;
  e.direction = ev.dir == METRIC_INGRESS ? "ingress" : "egress";
  e.ct_state = std::string(datapath::ctStatusName(ev.ct_state));
  switch (ev.type) {
    case EVENT_DROP:
      e.drop_reason = ev.subtype;
      e.drop_reason_desc = datapath::dropReasonName(ev.subtype);
      e.line = ev.line;
      e.file = std::to_string(ev.file);
      break;
    case EVENT_TRACE:
      e.observation_point = std::string(datapath::tracePointName(ev.subtype));
      break;
    case EVENT_POLICY_VERDICT:
      e.verdict = ev.verdict == 0 ? "allow" : ev.verdict > 0 ? "redirect" : "deny";
      if (ev.audited != 0) e.verdict = "audit";
      if (ev.verdict < 0) {
        // In 64 bits: a verdict of INT32_MIN (a corrupted record) must not overflow.
        e.drop_reason = -static_cast<int64_t>(ev.verdict);
        e.drop_reason_desc = datapath::dropReasonName(static_cast<uint8_t>(e.drop_reason));
      }
      if (ev.verdict > 0) e.proxy_port = ev.verdict;
      e.match_type = std::string(datapath::policyMatchName(ev.match_type));
      break;
    default: break;
  }
  api::MonitorTuple t;
  t.src = datapath::formatIpv4(ev.tuple.saddr.ip4);
  t.dst = datapath::formatIpv4(ev.tuple.daddr.ip4);
  t.protocol = protoName(ev.tuple.proto);
  if (ev.tuple.proto == 6 || ev.tuple.proto == 17 || ev.tuple.proto == 132) {
    t.sport = ntohs(ev.tuple.sport);
    t.dport = ntohs(ev.tuple.dport);
  }
  if (ev.tuple.proto == 6) t.tcp_flags = tcpFlags(ev.tuple.tcp_flags);
  if (ev.tuple.proto == 1) {
    t.icmp_type = ev.tuple.icmp_type;
    t.icmp_code = ev.tuple.icmp_code;
  }
  e.tuple = t;
  return e;
}

Status registerRoutes(api::Router& router, EventHub& hub) {
  return router.add(
      api::Method::kGet, "/v1/monitor", [&hub](const api::Request& r) -> Result<api::Response> {
        Filter f;
        for (const auto& t : r.queryValues("type")) {
          if (t != "drop" && t != "trace" && t != "policy-verdict" && t != "debug" &&
              t != "agent" && t != "lost")
            return makeError(ErrorCode::kInvalidArgument,
                             "type: '{}' is not one of drop, trace, policy-verdict, debug, agent",
                             t);
          f.types.insert(t);
        }
        auto num = [&](const char* name, std::optional<int64_t>& out) -> Status {
          auto v = r.queryValue(name);
          if (!v) return okStatus();
          try {
            size_t used = 0;
            out = std::stoll(*v, &used);
            if (used != v->size()) throw std::invalid_argument("trailing");
          } catch (const std::exception&) {
            return makeError(ErrorCode::kInvalidArgument, "{}: '{}' is not an endpoint id", name,
                             *v);
          }
          return okStatus();
        };
        CILIUM_RETURN_IF_ERROR(num("from", f.from));
        CILIUM_RETURN_IF_ERROR(num("to", f.to));
        CILIUM_RETURN_IF_ERROR(num("related-to", f.related));
        return api::Response::streaming(std::make_shared<ClientStream>(hub, std::move(f)));
      });
}

}  // namespace cilium::monitor
