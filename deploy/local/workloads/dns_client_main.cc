// cilium-dns-client: the demo's DNS client workload (a pod has no dig). One A query to a given
// server over UDP (or TCP), built and parsed by glibc's libresolv; prints the answer's
// rcode and addresses, "NOERROR 172.30.0.201" or "REFUSED", so scripts can tell a proxy's
// refusal from an answer.
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr char kUsage[] =
    "Usage: cilium-dns-client SERVER NAME [--tcp] [--timeout SECONDS]\n"
    "  e.g. cilium-dns-client 172.30.0.200 alderaan.galaxy.test\n"
    "Prints the rcode (NOERROR, NXDOMAIN, REFUSED, ...) then the A records' addresses.\n"
    "Exit status: 0 an answer (any rcode), 2 usage, 4 no answer in time.\n";

const char* rcodeName(int rcode) {
  static const char* kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"};
  return rcode >= 0 && rcode < 6 ? kNames[rcode] : "RCODE?";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> words;
  bool tcp = false;
  int timeout_s = 3;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--tcp") {
      tcp = true;
    } else if (arg == "--timeout" && i + 1 < argc) {
      timeout_s = std::atoi(argv[++i]);
      if (timeout_s <= 0 || timeout_s > 60) {
        std::fputs(kUsage, stderr);
        return 2;
      }
    } else {
      words.push_back(arg);
    }
  }
  in_addr server{};
  if (words.size() != 2 || inet_pton(AF_INET, words[0].c_str(), &server) != 1) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  // The query is built by libresolv; it is sent by hand, to that one server, once: res_nsend
  // would turn a REFUSED answer into an error (it tries the next server instead).
  unsigned char query[NS_PACKETSZ], answer[NS_MAXMSG];
  int qlen = res_mkquery(ns_o_query, words[1].c_str(), ns_c_in, ns_t_a, nullptr, 0, nullptr,
                         query, sizeof(query));
  if (qlen < 0) {
    std::fprintf(stderr, "cilium-dns-client: bad name \"%s\"\n", words[1].c_str());
    return 2;
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(53);
  to.sin_addr = server;
  int fd = ::socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int n = -1;
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0) {
    if (!tcp) {
      if (::send(fd, query, static_cast<size_t>(qlen), 0) == qlen)
        n = static_cast<int>(::recv(fd, answer, sizeof(answer), 0));
    } else {
      // TCP: a 2-byte length before each message.
      unsigned char framed[2 + NS_PACKETSZ];
      framed[0] = static_cast<unsigned char>(qlen >> 8);
      framed[1] = static_cast<unsigned char>(qlen);
      std::memcpy(framed + 2, query, static_cast<size_t>(qlen));
      auto readAll = [fd](unsigned char* p, size_t len) {
        size_t got = 0;
        while (got < len) {
          ssize_t r = ::recv(fd, p + got, len - got, 0);
          if (r <= 0) return false;
          got += static_cast<size_t>(r);
        }
        return true;
      };
      unsigned char len[2];
      if (::send(fd, framed, static_cast<size_t>(qlen) + 2, MSG_NOSIGNAL) == qlen + 2 &&
          readAll(len, 2)) {
        size_t want = static_cast<size_t>(len[0]) << 8 | len[1];
        if (want <= sizeof(answer) && readAll(answer, want)) n = static_cast<int>(want);
      }
    }
  }
  if (fd >= 0) ::close(fd);
  if (n < 0) {
    std::puts("timeout");
    return 4;
  }
  ns_msg msg;
  if (ns_initparse(answer, n, &msg) != 0) {
    std::puts("malformed answer");
    return 5;
  }
  std::string out = rcodeName(ns_msg_getflag(msg, ns_f_rcode));
  for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) != 0) break;
    if (ns_rr_type(rr) != ns_t_a || ns_rr_rdlen(rr) != 4) continue;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, ns_rr_rdata(rr), ip, sizeof(ip));
    out += std::string(" ") + ip;
  }
  std::puts(out.c_str());
  return 0;
}
