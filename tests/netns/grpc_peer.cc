// grpc_peer: the real gRPC server and client of the L7 proxy's gRPC netns test (h2c, plaintext),
// run inside the test's pods.
//
//   grpc_peer serve <ip:port>                    pkg.Echo: Allowed echoes with a trailer,
//                                                Denied answers OK too (only a proxy denies)
//   grpc_peer call <ip:port> <Method> <bytes>    one unary call with a patterned payload; prints
//                                                "status=N size=N intact=0|1 trailer=V message=M"
//   grpc_peer stream <ip:port> <Method> <count> <bytes>
//                                                one bidirectional stream (Chat, ChatDenied):
//                                                `count` messages, each read back before the
//                                                next is written; prints
//                                                "status=N echoed=N intact=0|1 message=M"
#include <cstdio>
#include <cstdlib>
#include <string>

#include <grpcpp/grpcpp.h>

#include "pkg_service.grpc.pb.h"

namespace {

constexpr int kMaxMessage = 32 << 20;

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return s;
}

class Service final : public pkg::Echo::Service {
  grpc::Status Allowed(grpc::ServerContext* ctx, const pkg::Payload* in,
                       pkg::Payload* out) override {
    ctx->AddTrailingMetadata("x-echo-size", std::to_string(in->data().size()));
    out->set_data(in->data());
    return grpc::Status::OK;
  }
  grpc::Status Denied(grpc::ServerContext*, const pkg::Payload*, pkg::Payload* out) override {
    out->set_data("reached the server");
    return grpc::Status::OK;
  }
  grpc::Status Chat(grpc::ServerContext*,
                    grpc::ServerReaderWriter<pkg::Payload, pkg::Payload>* stream) override {
    return echo(stream);
  }
  grpc::Status ChatDenied(grpc::ServerContext*,
                          grpc::ServerReaderWriter<pkg::Payload, pkg::Payload>* stream) override {
    return echo(stream);
  }
  static grpc::Status echo(grpc::ServerReaderWriter<pkg::Payload, pkg::Payload>* stream) {
    pkg::Payload in;
    while (stream->Read(&in))
      if (!stream->Write(in)) break;
    return grpc::Status::OK;
  }
};

int serve(const std::string& addr) {
  Service service;
  grpc::ServerBuilder b;
  b.AddListeningPort(addr, grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  b.SetMaxReceiveMessageSize(kMaxMessage);
  b.SetMaxSendMessageSize(kMaxMessage);
  auto server = b.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "grpc_peer: cannot listen on %s\n", addr.c_str());
    return 1;
  }
  server->Wait();
  return 0;
}

std::shared_ptr<grpc::Channel> channelTo(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessage);
  args.SetMaxSendMessageSize(kMaxMessage);
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);  // straight to the pod, whatever the environment
  // "ipv4:a.b.c.d:port" or "ipv6:[addr]:port": no resolver involved.
  std::string scheme = addr.rfind('[', 0) == 0 ? "ipv6:" : "ipv4:";
  return grpc::CreateCustomChannel(scheme + addr, grpc::InsecureChannelCredentials(), args);
}

int call(const std::string& addr, const std::string& method, size_t bytes) {
  auto stub = pkg::Echo::NewStub(channelTo(addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  pkg::Payload in, out;
  in.set_data(pattern(bytes));
  grpc::Status st =
      method == "Allowed" ? stub->Allowed(&ctx, in, &out) : stub->Denied(&ctx, in, &out);
  std::string trailer;
  auto t = ctx.GetServerTrailingMetadata();
  if (auto it = t.find("x-echo-size"); it != t.end())
    trailer.assign(it->second.data(), it->second.size());
  std::printf("status=%d size=%zu intact=%d trailer=%s message=%s\n",
              static_cast<int>(st.error_code()), out.data().size(), out.data() == in.data() ? 1 : 0,
              trailer.empty() ? "-" : trailer.c_str(), st.error_message().c_str());
  return 0;
}

int stream(const std::string& addr, const std::string& method, size_t count, size_t bytes) {
  auto stub = pkg::Echo::NewStub(channelTo(addr));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto rw = method == "Chat" ? stub->Chat(&ctx) : stub->ChatDenied(&ctx);
  size_t echoed = 0;
  bool intact = true;
  for (size_t i = 0; i < count; i++) {
    pkg::Payload in, out;
    in.set_data(pattern(bytes) + std::to_string(i));
    if (!rw->Write(in) || !rw->Read(&out)) break;
    echoed++;
    intact = intact && out.data() == in.data();
  }
  rw->WritesDone();
  grpc::Status st = rw->Finish();
  std::printf("status=%d echoed=%zu intact=%d message=%s\n", static_cast<int>(st.error_code()),
              echoed, echoed > 0 && intact ? 1 : 0, st.error_message().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "serve" && argc == 3) return serve(argv[2]);
  if (mode == "call" && argc == 5)
    return call(argv[2], argv[3], std::strtoul(argv[4], nullptr, 10));
  if (mode == "stream" && argc == 6)
    return stream(argv[2], argv[3], std::strtoul(argv[4], nullptr, 10),
                  std::strtoul(argv[5], nullptr, 10));
  std::fprintf(stderr,
               "usage: grpc_peer serve <ip:port> | call <ip:port> <Method> <bytes> | "
               "stream <ip:port> Chat|ChatDenied <count> <bytes>\n");
  return 2;
}
