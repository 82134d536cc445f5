// Sockets opened inside a given network namespace (a socket keeps the namespace it was created
// in), so tests drive real pod-to-pod traffic from one process without sleeping or shelling out.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "agent/common/error.h"
#include "agent/common/fd.h"

namespace cilium::testing {

Result<UniqueFd> listenTcp(const std::string& netns, const std::string& ip, uint16_t port);
// Connects with a timeout; kDeadlineExceeded when nothing answers (a dropped SYN).
Result<UniqueFd> connectTcp(const std::string& netns, const std::string& ip, uint16_t port,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5));
Result<UniqueFd> acceptTcp(int listen_fd,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

Result<UniqueFd> bindUdp(const std::string& netns, const std::string& ip, uint16_t port);
Status sendUdp(int fd, const std::string& ip, uint16_t port, const std::string& data);
// Receives one datagram; kDeadlineExceeded on timeout.
Result<std::string> recvUdp(int fd, std::chrono::milliseconds timeout,
                            std::string* from_ip = nullptr, uint16_t* from_port = nullptr);

// Sends one datagram from `netns` on a socket connected to ip:port and waits for the answer a
// refusing peer gives (ICMP port unreachable, reported as ECONNREFUSED on a connected socket).
// OK when refused; kDeadlineExceeded when nothing came back; another error otherwise.
Status expectUdpRefused(const std::string& netns, const std::string& ip, uint16_t port,
                        std::chrono::milliseconds timeout = std::chrono::seconds(3));

Status sendAll(int fd, const std::string& data);
// Reads exactly n bytes (or fails on EOF / timeout).
Result<std::string> recvExactly(int fd, size_t n,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The local port a socket is bound to.
Result<uint16_t> localPort(int fd);

// The "ip:port" (IPv6: "[ip]:port") of a socket's peer (`local`: its own address); "" when it
// has none.
std::string socketAddress(int fd, bool local = false);
// The address alone (no brackets) and the port of a socket's peer (`local`: its own); "" / 0
// when it has none.
std::string socketIp(int fd, bool local = false);
uint16_t socketPort(int fd, bool local = false);

// Request/response rate of one TCP connection from `client_netns` to a listener this opens on
// server_ip:port in `server_netns`: 1-byte request, 1-byte response (netperf TCP_RR), for
// `duration`; transactions per second.
Result<double> tcpRequestResponseRate(const std::string& client_netns,
                                      const std::string& server_netns, const std::string& server_ip,
                                      uint16_t port, std::chrono::seconds duration);

}  // namespace cilium::testing
