// SPDX-License-Identifier: BSL-1.0
// libFuzzer target: raw bytes as an HTTP client's side of one connection to
// troupe-node's gateway — Beast's parser, the gateway's target and bearer
// checks, and the node's real routes (locks, sagas, ring, metrics) on an
// in-process node (troupe::net::node_instance, the same code as troupe-node).
//
// Each input is written to a fresh loopback connection, whose write side is
// then shut; the responses are read to the end. The node runs in this
// process, so ASan/UBSan see anything the input makes it do. Checks: every
// response is well-formed HTTP/1.1 with a status below 500 or one of the
// refusals a client may legitimately get (503, 504); no handler throws (a
// 500); and the node answers /healthz after every input.
//
// The node: a bearer token (so the auth paths are reached; the seeds carry
// it), a 200 ms handler deadline and lock TTLs of at most 200 ms (so a lock
// wait or a saga long poll in an input ends fast).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <troupe/net/node_main.hpp>

namespace {

unsigned short http_port = 0;
int last_recv_errno = 0;  // of the last exchange: 0 when it ended in an orderly close

std::unique_ptr<troupe::net::node_instance> start_node() {
  char dir[] = "/tmp/troupe-http-fuzz-XXXXXX";
  if (!::mkdtemp(dir)) std::abort();
  const std::string token_file = std::string(dir) + "/token";
  {
    std::ofstream f(token_file);
    f << "fuzz-token-0123456789abcdef\n";
  }
  ::chmod(token_file.c_str(), 0600);
  auto n = std::make_unique<troupe::net::node_instance>(std::vector<std::string>{
      "--name", "fuzz", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--shards", "1",
      "--http-token-file", token_file, "--lock-max-ttl-ms", "200", "--http-handler-timeout-ms",
      "200", "--http-read-timeout-ms", "1000"});
  http_port = n->http_port();
  return n;
}

int connect_node() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) std::abort();
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(http_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc;
  do rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    std::perror("http_fuzz: connect");
    std::abort();
  }
  return fd;
}

// Writes `in` (all of it unless the server closes first), shuts the write
// side, and reads until the server closes.
std::string exchange(const std::uint8_t* data, std::size_t size) {
  const int fd = connect_node();
  std::size_t off = 0;
  while (off < size) {
    const ssize_t n = ::send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;  // libFuzzer's -timeout alarm
    if (n <= 0) break;                      // the server answered and closed (a malformed request)
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[16384];
  last_recv_errno = 0;
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;  // libFuzzer's -timeout alarm
    if (n < 0) last_recv_errno = errno;
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        std::fprintf(stderr, "http_fuzz: the node did not finish the connection within 5 s\n");
        std::abort();
      }
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Walks the response stream one response at a time (status line, headers,
// then Content-Length bytes of body: a body may echo "HTTP/1.1" from the
// request) and checks every status: no 5xx but 503/504. Bytes that are not
// a response where one must start abort.
void check_responses(const std::string& out) {
  std::size_t at = 0;
  while (at < out.size()) {
    if (out.compare(at, 7, "HTTP/1.") != 0) {
      std::fprintf(stderr, "http_fuzz: bytes where a response must start:\n%s\n",
                   out.substr(at, 200).c_str());
      std::abort();
    }
    if (at + 12 > out.size()) break;  // cut off mid status line: the node closed
    const int status = std::atoi(out.c_str() + at + 9);
    if (status < 100 || (status >= 500 && status != 503 && status != 504)) {
      std::fprintf(stderr, "http_fuzz: status %d:\n%s\n", status, out.substr(at, 400).c_str());
      std::abort();
    }
    const std::size_t end = out.find("\r\n\r\n", at);
    if (end == std::string::npos) break;  // cut off in the headers
    std::size_t length = 0;
    const std::string headers = out.substr(at, end - at);
    if (const std::size_t cl = headers.find("\r\nContent-Length: "); cl != std::string::npos)
      length = static_cast<std::size_t>(std::strtoull(headers.c_str() + cl + 18, nullptr, 10));
    at = end + 4 + length;
  }
}

void check_healthy() {
  static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string out = exchange(reinterpret_cast<const std::uint8_t*>(req), sizeof req - 1);
  if (out.rfind("HTTP/1.1 200", 0) != 0) {
    std::fprintf(stderr, "http_fuzz: the node is not healthy after the input: '%s' (%s)\n",
                 out.substr(0, 200).c_str(),
                 last_recv_errno ? std::strerror(last_recv_errno) : "closed");
    std::abort();
  }
}

}  // namespace

// No leak checks here: libFuzzer's per-input leak check stops every thread of
// the process, and with the node's runtime threads inside an io_uring wait it
// crashes the process (a SEGV on a shard thread, seen on every run of the
// seed corpus). Leaks in this code are caught by the ASan builds of the tests
// (tests/net/node_http_test.cpp runs the same node and routes).
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static std::unique_ptr<troupe::net::node_instance> node = start_node();
  check_responses(exchange(data, size));
  check_healthy();
  return 0;
}
