// SPDX-License-Identifier: BSL-1.0
// The cluster transport between two processes on 127.0.0.1:
//
//   remote_pingpong          one ask outstanding, 64-byte payload; round trips/s
//   remote_pipelined         1000 asks outstanding; msgs/s
//   remote_tell_stream       one-way tells, the end found by one ask; msgs/s
//   remote_pingpong_tls      remote_pingpong over mutual TLS 1.3; baseline:
//                            remote_pingpong between the same two processes
//   remote_tell_stream_tls   remote_tell_stream over mutual TLS 1.3; baseline:
//                            remote_tell_stream between the same two processes
//   remote_idle_cpu_percent  two idle linked nodes (heartbeats on); % of one core
//   ring_routed_over_direct  the tell stream routed by key through the
//                            ring-router (keys owned by node B) against the
//                            same stream told to a remote ref, in one run
//
// Every workload forks one child before the parent creates any runtime. The
// child first serves the raw baseline (plain sockets or liburing, no runtime),
// then, on the parent's command, starts runtime(2 shards) + node B with the
// published `server` actor, sends its port over a pipe and waits until the pipe
// closes. The parent measures the baseline against the child, then starts
// runtime(2 shards) + node A with node B as its seed and measures troupe. So
// the baseline and the figure are taken between the same two processes.
//
// On the wire a 64-byte message told is an 86-byte frame (an 18-byte header:
// length, kind, flags, type id, target; a u32 string size; 64 bytes), an ask
// 94 and a reply 82; the raw baselines move 86 bytes per message, no more
// than troupe does.
//
// Both nodes put their actors on the node's shard (shard 0): the client actor
// on node A, the server on node B. Shard 1 of each runtime stays idle.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <future>
#include <optional>
#include <stdexcept>
#include <troupe/actors/router.hpp>
#include <troupe/core.hpp>
#include <troupe/net/node.hpp>

#include "bench.hpp"
#include "net/tls_certs.hpp"  // a throwaway CA for the TLS workloads (tests/net)

#if TROUPE_BENCH_LIBURING
#include <liburing.h>
#endif

using namespace std::chrono_literals;
using troupe::task;
namespace net = troupe::net;

// --- messages that cross the wire ------------------------------------------

struct ping_msg {  // asked; the reply is the same message back
  std::string data;
  template <class A>
  void serialize(A& a) {
    a(data);
  }
};
struct stream_msg {  // told, one way
  std::string data;
  template <class A>
  void serialize(A& a) {
    a(data);
  }
};
struct count_q {  // how many stream_msg arrived (a std::uint64_t reply)
  template <class A>
  void serialize(A&) {}
};
TROUPE_REMOTE_MESSAGE(ping_msg, 9001);
TROUPE_REMOTE_MESSAGE(stream_msg, 9002);
TROUPE_REMOTE_MESSAGE(count_q, 9003);

namespace {

constexpr std::size_t payload_bytes = 64;
constexpr std::size_t raw_message_bytes = 18 + 4 + 64;  // a tell's frame: header, size, payload
const std::string raw_bytes_text = std::to_string(raw_message_bytes) + " B";
constexpr std::size_t pipelined_window = 1000;
constexpr const char* node_a_name = "bench-a";
constexpr const char* node_b_name = "bench-b";

const std::string& payload() {
  static const std::string p(payload_bytes, 'p');
  return p;
}

// Every failure ends the run through this exception: main catches it after
// the destructors have stopped the runtimes and reaped the child.
[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

// --- the actor on node B (the child) ------------------------------------------

struct server : troupe::actor {
  using remote_messages = net::message_list<ping_msg, stream_msg, count_q>;
  ping_msg handle(ping_msg m) { return m; }
  void handle(stream_msg) { ++received_; }
  std::uint64_t handle(count_q) const { return received_; }

 private:
  std::uint64_t received_ = 0;
};

// --- the actors on node A (the parent) ------------------------------------------

struct run_pingpong {
  std::uint64_t n;
};
// One ask outstanding at a time.
struct pinger : troupe::actor {
  explicit pinger(troupe::actor_ref<server> s) : server_(std::move(s)) {}
  task<bool> handle(run_pingpong r) {
    for (std::uint64_t i = 0; i < r.n; ++i) {
      ping_msg q{payload()};
      auto call = server_.ask(std::move(q), 5s);
      troupe::result<ping_msg> reply = co_await call;
      if (!reply || reply->data.size() != payload_bytes) co_return false;
    }
    co_return true;
  }

 private:
  troupe::actor_ref<server> server_;
};

struct run_window {
  std::uint64_t n;
  std::size_t window;
  std::promise<bool>* done;
};
struct window_loop {};
// `window` loops interleave (reentrant): each keeps one ask in flight, so the
// actor keeps `window` asks outstanding until n have completed.
struct window_client : troupe::actor {
  static constexpr bool reentrant = true;
  explicit window_client(troupe::actor_ref<server> s) : server_(std::move(s)) {}
  void handle(run_window r) {
    TROUPE_ASSERT(loops_ == 0, "window_client: one run at a time");
    total_ = r.n;
    issued_ = completed_ = 0;
    failed_ = false;
    done_ = r.done;
    loops_ = r.window;
    for (std::size_t i = 0; i < r.window; ++i) (void)troupe::ref_of(this).tell(window_loop{});
  }
  task<void> handle(window_loop) {
    while (issued_ < total_ && !failed_) {
      ++issued_;
      ping_msg q{payload()};
      auto call = server_.ask(std::move(q), 10s);
      troupe::result<ping_msg> reply = co_await call;
      if (!reply || reply->data.size() != payload_bytes) failed_ = true;
      ++completed_;
    }
    if (--loops_ == 0) done_->set_value(!failed_ && completed_ == total_);
  }

 private:
  troupe::actor_ref<server> server_;
  std::uint64_t total_ = 0, issued_ = 0, completed_ = 0;
  std::size_t loops_ = 0;
  bool failed_ = false;
  std::promise<bool>* done_ = nullptr;
};

struct run_stream {
  std::uint64_t n;
  std::uint64_t batch;  // tells between two checkpoints of one loop
  std::size_t loops;    // loops sending at once: how many batches may be in flight
  std::promise<bool>* done;
  // Set before done: the sending thread's CPU time (kernel included) spent
  // in the batches of tells, so the sender's cost per message can be read
  // apart from waiting.
  std::int64_t* send_cpu_ns = nullptr;
};
struct stream_loop {};
std::int64_t thread_cpu_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}
// Tells n stream_msg, then one ask (count_q): FIFO from this node to the
// server means its reply comes after every tell has been counted. The
// transport has no back-pressure (a link's output buffer grows without bound),
// so each loop sends a batch and then asks count_q before its next batch:
// at most loops x batch messages are queued at any time, and with two loops
// one batch is on the wire while the other is being produced.
// With a node and keys, the same stream is routed by key instead (tells and
// checkpoints alike, so they stay in order).
struct streamer : troupe::actor {
  static constexpr bool reentrant = true;
  explicit streamer(troupe::actor_ref<server> s, net::node* routed = nullptr,
                    const std::vector<std::string>* keys = nullptr)
      : server_(std::move(s)), node_(routed), keys_(keys) {}
  task<void> handle(run_stream r) {
    TROUPE_ASSERT(loops_ == 0, "streamer: one run at a time");
    troupe::result<std::uint64_t> base = co_await count();
    if (!base) {
      r.done->set_value(false);
      co_return;
    }
    base_ = *base;
    total_ = r.n;
    batch_ = r.batch;
    sent_ = 0;
    failed_ = false;
    done_ = r.done;
    send_cpu_ns_ = r.send_cpu_ns;
    if (send_cpu_ns_) *send_cpu_ns_ = 0;
    loops_ = r.loops;
    for (std::size_t i = 0; i < r.loops; ++i) (void)troupe::ref_of(this).tell(stream_loop{});
  }
  task<void> handle(stream_loop) {
    while (sent_ < total_ && !failed_) {
      const std::uint64_t k = std::min(batch_, total_ - sent_);
      sent_ += k;
      const std::int64_t cpu0 = thread_cpu_ns();
      if (node_) {
        // keys_ holds a power of two of keys: a mask picks one (a division
        // per message would cost the harness more than routing does).
        const std::size_t mask = keys_->size() - 1;
        for (std::uint64_t i = 0; i < k; ++i)
          if (node_->route_tell<server>((*keys_)[i & mask], "server", stream_msg{payload()}))
            failed_ = true;
      } else {
        for (std::uint64_t i = 0; i < k; ++i)
          if (server_.tell(stream_msg{payload()})) failed_ = true;
      }
      if (send_cpu_ns_) *send_cpu_ns_ += thread_cpu_ns() - cpu0;
      troupe::result<std::uint64_t> c = co_await count();
      if (!c) failed_ = true;
    }
    if (--loops_ != 0) co_return;
    // The end: everything told before this ask has been counted when it answers.
    troupe::result<std::uint64_t> c = co_await count();
    done_->set_value(!failed_ && c && *c == base_ + total_);
  }

 private:
  task<troupe::result<std::uint64_t>> count() {
    if (node_) {
      auto call = node_->route_ask<server>(keys_->front(), "server", count_q{}, 30s);
      troupe::result<std::uint64_t> c = co_await call;
      co_return c;
    }
    auto call = server_.ask(count_q{}, 30s);
    troupe::result<std::uint64_t> c = co_await call;
    co_return c;
  }

  troupe::actor_ref<server> server_;
  net::node* node_;
  const std::vector<std::string>* keys_;
  std::uint64_t total_ = 0, batch_ = 0, sent_ = 0, base_ = 0;
  std::size_t loops_ = 0;
  bool failed_ = false;
  std::promise<bool>* done_ = nullptr;
  std::int64_t* send_cpu_ns_ = nullptr;
};

// --- pipes and the child process ------------------------------------------------

bool write_all(int fd, const void* p, std::size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_exact(int fd, void* p, std::size_t n) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t r = ::read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Waits at most `timeout` for fd to become readable.
bool readable_within(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

// A 4-byte value over a pipe (ports, acknowledgements), bounded in time.
bool send_u32(int fd, std::uint32_t v) { return write_all(fd, &v, sizeof v); }
std::optional<std::uint32_t> receive_u32(int fd, std::chrono::milliseconds timeout) {
  std::uint32_t v = 0;
  if (!readable_within(fd, timeout) || !read_exact(fd, &v, sizeof v)) return std::nullopt;
  return v;
}

// The child's commands: one byte; the pipe closing means "exit".
constexpr char cmd_start_node = 'N';
// What the child says once it has run a command.
constexpr std::uint32_t child_failed = 0;

class child_process {
 public:
  // Forks; the child runs body(commands_fd, replies_fd) and _exits with its result.
  template <class Body>
  explicit child_process(Body body) {
    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0 || ::pipe2(up, O_CLOEXEC) != 0) fail("pipe failed");
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) fail("fork failed");
    if (pid_ == 0) {
      ::close(down[1]);
      ::close(up[0]);
      // Never outlive the parent, whatever happens to it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(3);
      int rc = 1;
      try {
        rc = body(down[0], up[1]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "remote_bench child: %s\n", e.what());
      }
      std::fflush(stderr);
      ::_exit(rc);
    }
    ::close(down[0]);
    ::close(up[1]);
    to_child_ = down[1];
    from_child_ = up[0];
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() { finish(); }

  pid_t pid() const noexcept { return pid_; }
  void command(char c) {
    if (!write_all(to_child_, &c, 1)) fail("the child is gone");
  }
  std::uint32_t receive(std::chrono::milliseconds timeout, const char* what) {
    std::optional<std::uint32_t> v = receive_u32(from_child_, timeout);
    if (!v || *v == child_failed) fail(std::string("no ") + what + " from the child");
    return *v;
  }

  /// Closes the command pipe (the child's cue to exit), waits up to 10 s for
  /// it, then kills it; reaps it in every case. Returns its exit status.
  int finish() {
    if (pid_ <= 0) return 0;
    if (to_child_ >= 0) ::close(std::exchange(to_child_, -1));
    if (from_child_ >= 0) ::close(std::exchange(from_child_, -1));
    int status = 0;
    const auto end = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (r < 0 && errno != EINTR) break;
      if (std::chrono::steady_clock::now() > end) {
        std::fprintf(stderr, "remote_bench: child %d did not exit in 10 s; killing it\n", pid_);
        ::kill(pid_, SIGKILL);
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(1ms);  // reaping: nothing to wait on but the exit itself
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
};

// --- raw sockets --------------------------------------------------------------

struct fd_guard {
  int fd = -1;
  explicit fd_guard(int f = -1) : fd(f) {}
  fd_guard(fd_guard&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  fd_guard& operator=(fd_guard&& o) noexcept {
    if (this != &o) {
      reset();
      fd = std::exchange(o.fd, -1);
    }
    return *this;
  }
  ~fd_guard() { reset(); }
  void reset() {
    if (fd >= 0) ::close(std::exchange(fd, -1));
  }
};

void tune(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{30, 0};  // a blocking call that hangs 30 s ends the run instead
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

fd_guard listen_loopback(std::uint16_t& port) {
  fd_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (s.fd < 0 || ::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(s.fd, 1) != 0 || ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail("cannot listen on 127.0.0.1");
  port = ntohs(a.sin_port);
  return s;
}

fd_guard accept_within(int lfd, std::chrono::milliseconds timeout) {
  if (!readable_within(lfd, timeout)) fail("no connection to accept");
  fd_guard c{::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)};
  if (c.fd < 0) fail("accept failed");
  tune(c.fd);
  return c;
}

fd_guard connect_loopback(std::uint16_t port) {
  fd_guard s{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (s.fd < 0 || ::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    fail("cannot connect to 127.0.0.1:" + std::to_string(port));
  tune(s.fd);
  return s;
}

// Baseline of remote_pingpong: blocking write, blocking read, raw_message_bytes each way.
void raw_echo_each(int fd) {
  char buf[raw_message_bytes];
  while (read_exact(fd, buf, sizeof buf))
    if (!write_all(fd, buf, sizeof buf)) return;
}
double raw_pingpong(int fd, std::uint64_t n) {
  char buf[raw_message_bytes];
  std::memset(buf, 'p', sizeof buf);
  auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; i < n; ++i)
    if (!write_all(fd, buf, sizeof buf) || !read_exact(fd, buf, sizeof buf))
      fail("raw ping-pong: the connection broke");
  return static_cast<double>(n) / troupe::bench::seconds_since(t0);
}

// Baseline of remote_pipelined: the child echoes whatever arrives, in bulk;
// the parent keeps at most 1000 messages' worth of bytes unanswered, writing
// and reading in batches from one thread (non-blocking, poll).
void raw_echo_bulk(int fd) {
  std::vector<char> buf(65536);
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || !write_all(fd, buf.data(), static_cast<std::size_t>(r))) return;
  }
}
double raw_pipelined(int fd, std::uint64_t n, std::size_t window) {
  const std::uint64_t total = n * raw_message_bytes;
  const std::uint64_t window_bytes = window * raw_message_bytes;
  std::vector<char> out(65536, 'p'), in(65536);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::uint64_t sent = 0, received = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (received < total) {
    const std::uint64_t can = std::min(total - sent, received + window_bytes - sent);
    pollfd p{fd, static_cast<short>(POLLIN | (can > 0 ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 10'000) <= 0) fail("raw pipelined: stalled for 10 s");
    if ((p.revents & POLLOUT) && can > 0) {
      ssize_t w = ::write(fd, out.data(), std::min<std::uint64_t>(can, out.size()));
      if (w < 0 && errno != EAGAIN && errno != EINTR) fail("raw pipelined: write failed");
      if (w > 0) sent += static_cast<std::uint64_t>(w);
    }
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      for (;;) {
        ssize_t r = ::read(fd, in.data(), in.size());
        if (r > 0) {
          received += static_cast<std::uint64_t>(r);
          continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
        fail("raw pipelined: the connection broke");
      }
    }
  }
  double secs = troupe::bench::seconds_since(t0);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return static_cast<double>(n) / secs;
}

// Baseline of remote_tell_stream: the parent sends n x raw_message_bytes in 64 KiB
// writes and shuts its side down; the child receives until EOF and answers
// with the byte count (its "ask at the end"). Both use liburing when they can
// (io_uring_prep_send / io_uring_prep_recv, one operation at a time), else
// blocking send / recv; each says which it used.
struct uring_ring {
#if TROUPE_BENCH_LIBURING
  io_uring ring{};
#endif
  bool ok = false;
  uring_ring() {
#if TROUPE_BENCH_LIBURING
    ok = ::io_uring_queue_init(8, &ring, 0) == 0;
#endif
  }
  ~uring_ring() {
#if TROUPE_BENCH_LIBURING
    if (ok) ::io_uring_queue_exit(&ring);
#endif
  }
  // One send or recv; returns the result (bytes, 0 at EOF, or -errno).
  int run(int fd, char* buf, std::size_t n, bool send) {
#if TROUPE_BENCH_LIBURING
    io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
    if (send) {
      ::io_uring_prep_send(sqe, fd, buf, n, 0);
    } else {
      ::io_uring_prep_recv(sqe, fd, buf, n, 0);
    }
    if (::io_uring_submit_and_wait(&ring, 1) < 0) return -EIO;
    io_uring_cqe* cqe = nullptr;
    if (::io_uring_wait_cqe(&ring, &cqe) != 0) return -EIO;
    int res = cqe->res;
    ::io_uring_cqe_seen(&ring, cqe);
    return res;
#else
    (void)fd, (void)buf, (void)n, (void)send;
    return -ENOSYS;
#endif
  }
};
constexpr std::uint64_t uring_flag = std::uint64_t{1} << 63;
void raw_sink(int fd) {
  std::vector<char> buf(65536);
  uring_ring u;
  std::uint64_t got = 0;
  for (;;) {
    ssize_t r;
    if (u.ok) {
      r = u.run(fd, buf.data(), buf.size(), false);
      if (r == -EINTR || r == -EAGAIN) continue;
    } else {
      r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r < 0 && errno == EINTR) continue;
    }
    if (r < 0) return;
    if (r == 0) break;
    got += static_cast<std::uint64_t>(r);
  }
  std::uint64_t reply = got | (u.ok ? uring_flag : 0);
  (void)write_all(fd, &reply, sizeof reply);
}
double raw_stream(int fd, std::uint64_t n, bool& both_uring) {
  const std::uint64_t total = n * raw_message_bytes;
  std::vector<char> buf(65536, 's');
  uring_ring u;
  std::uint64_t sent = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (sent < total) {
    const std::size_t k =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - sent));
    ssize_t w;
    if (u.ok) {
      w = u.run(fd, buf.data(), k, true);
      if (w == -EINTR || w == -EAGAIN) continue;
    } else {
      w = ::send(fd, buf.data(), k, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
    }
    if (w <= 0) fail("raw stream: send failed");
    sent += static_cast<std::uint64_t>(w);
  }
  ::shutdown(fd, SHUT_WR);
  std::uint64_t reply = 0;
  if (!read_exact(fd, &reply, sizeof reply)) fail("raw stream: no count from the child");
  double secs = troupe::bench::seconds_since(t0);
  if ((reply & ~uring_flag) != total) fail("raw stream: the child counted other bytes");
  both_uring = u.ok && (reply & uring_flag);
  return static_cast<double>(n) / secs;
}

// --- the child: baseline server, then node B ------------------------------------------

enum class workload { pingpong, pipelined, tell_stream, idle, routed, tls };

net::node_options node_options_for(const char* name) {
  net::node_options o;
  o.name = name;
  o.cluster = "troupe-bench";
  o.secret = "bench";
  return o;  // heartbeat 250 ms, down_after 1.5 s: the defaults
}

troupe::runtime_options runtime_options_2() {
  troupe::runtime_options o;
  o.shards = 2;
  return o;
}

int child_main(workload w, int commands, int replies, const net::tls_options* tls = nullptr) {
  if (w != workload::idle && w != workload::routed && w != workload::tls) {
    // The baseline: serve raw connections, one at a time, each until the
    // parent closes it, until the parent sends a command.
    std::uint16_t port = 0;
    fd_guard l = listen_loopback(port);
    send_u32(replies, port);
    for (;;) {
      pollfd p[2] = {{l.fd, POLLIN, 0}, {commands, POLLIN, 0}};
      int r = ::poll(p, 2, 120'000);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 0;  // the parent said nothing for 120 s
      if (p[1].revents != 0) break;
      fd_guard c = accept_within(l.fd, 1s);
      if (w == workload::pingpong) raw_echo_each(c.fd);
      if (w == workload::pipelined) raw_echo_bulk(c.fd);
      if (w == workload::tell_stream) raw_sink(c.fd);
    }
  }
  // Node B, on command; the idle baseline is measured while we wait here.
  char cmd = 0;
  if (!readable_within(commands, 120s) || !read_exact(commands, &cmd, 1) || cmd != cmd_start_node)
    return 0;
  troupe::runtime rt{runtime_options_2()};
  net::node b{rt, node_options_for(node_b_name)};
  auto s = rt.spawn<server>();
  b.publish(s, "server");
  std::optional<troupe::actors::router> router;
  if (w == workload::routed) router.emplace(b);
  send_u32(replies, b.port());
  // The TLS workloads: a second node B on the same shard, the same name and
  // server, whose links speak TLS; its port follows the plaintext one.
  std::optional<net::node> b_tls;
  if (w == workload::tls) {
    net::node_options o = node_options_for(node_b_name);
    o.tls = *tls;
    b_tls.emplace(rt, o);
    b_tls->publish(s, "server");
    send_u32(replies, b_tls->port());
  }
  // Until the parent closes the pipe (EOF) or 600 s pass.
  if (readable_within(commands, 600s)) (void)read_exact(commands, &cmd, 1);
  return 0;
}

// --- the parent: node A ------------------------------------------------------------

bool linked(net::node& n, const std::string& peer) {
  auto s = n.state(2s);
  if (!s) return false;
  for (auto& m : s->members)
    if (m.name == peer && m.up) return true;
  return false;
}

// Runtime(2 shards) + node A with node B as its seed, linked, and a ref to
// the child's server.
struct node_a {
  troupe::runtime rt{runtime_options_2()};
  net::node node;
  troupe::actor_ref<server> remote;

  explicit node_a(std::uint16_t port_b, const net::tls_options* tls = nullptr)
      : node(rt, with_seed(port_b, tls)) {
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (!linked(node, node_b_name)) {
      if (std::chrono::steady_clock::now() > end) fail("node A did not link to node B in 10 s");
      std::this_thread::yield();
    }
    // The publish was told to node B's node actor before it sent its port;
    // retry a few times anyway rather than trust that ordering.
    for (int attempt = 0; attempt < 50 && !remote; ++attempt) {
      auto r = node.remote_sync<server>(node_b_name, "server", 5s);
      if (r) {
        remote = *r;
      } else if (r.error() != troupe::errc::name_not_found) {
        fail("lookup of server failed: " + r.error().message());
      } else {
        std::this_thread::sleep_for(10ms);
      }
    }
    if (!remote) fail("server not found on node B");
  }

  std::uint64_t frames_in() {
    auto s = node.state(2s);
    if (!s || s->members.empty()) return 0;
    return s->members[0].stats.frames_in;
  }
  std::uint64_t frames_out() {
    auto s = node.state(2s);
    if (!s || s->members.empty()) return 0;
    return s->members[0].stats.frames_out;
  }

 private:
  static net::node_options with_seed(std::uint16_t port_b, const net::tls_options* tls) {
    net::node_options o = node_options_for(node_a_name);
    o.seeds = {{"127.0.0.1", port_b}};
    if (tls) o.tls = *tls;
    return o;
  }
};

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(6);
  os << v;
  return os.str();
}

// Round trips/s of one pinger on node A: a warm-up, then the median of `runs`.
double measure_pingpong(node_a& na, std::uint64_t n, int runs) {
  auto p = na.rt.spawn<pinger>(na.remote);
  auto round = [&](std::uint64_t k) {
    auto t0 = std::chrono::steady_clock::now();
    auto ok = na.rt.ask_sync(p, run_pingpong{k}, 120s);
    double secs = troupe::bench::seconds_since(t0);
    if (!ok || !*ok) fail("remote_pingpong: an ask failed or timed out");
    return static_cast<double>(k) / secs;
  };
  round(std::min<std::uint64_t>(n, 1000));  // warm-up
  return troupe::bench::median_of(runs, [&] { return round(n); });
}

// Msgs/s of one streamer on node A: a warm-up, then the median of `runs`.
double measure_stream(node_a& na, std::uint64_t n, std::uint64_t batch, std::size_t loops,
                      int runs) {
  auto st = na.rt.spawn<streamer>(na.remote);
  auto round = [&](std::uint64_t k) {
    std::promise<bool> done;
    auto f = done.get_future();
    auto t0 = std::chrono::steady_clock::now();
    if (st.tell(run_stream{k, batch, loops, &done})) fail("remote_tell_stream: tell failed");
    if (f.wait_for(300s) != std::future_status::ready)
      fail("remote_tell_stream: not done in 300 s");
    double secs = troupe::bench::seconds_since(t0);
    if (!f.get()) fail("remote_tell_stream: a tell or the final ask failed, or the count is off");
    return static_cast<double>(k) / secs;
  };
  round(std::min<std::uint64_t>(n, 100'000));  // warm-up
  return troupe::bench::median_of(runs, [&] { return round(n); });
}

// The certificates of the TLS workloads: a fresh CA, one certificate per node name.
struct bench_certs {
  troupe::test::test_ca ca{"troupe bench CA"};
  net::tls_options a = ca.issue(node_a_name, {node_a_name});
  net::tls_options b = ca.issue(node_b_name, {node_b_name});
};

// One child with node B twice (plaintext and TLS): `measure` runs against
// the plaintext one, then against the TLS one, between the same two
// processes. Returns {plaintext, TLS}.
template <class Measure>
std::pair<double, double> plain_then_tls(Measure measure) {
  bench_certs certs;
  child_process child([&certs](int c, int r) { return child_main(workload::tls, c, r, &certs.b); });
  child.command(cmd_start_node);
  const auto plain_port = static_cast<std::uint16_t>(child.receive(30s, "node port"));
  const auto tls_port = static_cast<std::uint16_t>(child.receive(30s, "TLS node port"));
  double plain = 0, tls = 0;
  {
    node_a na(plain_port);
    plain = measure(na);
  }
  {
    node_a na(tls_port, &certs.a);
    tls = measure(na);
  }
  child.finish();
  return {plain, tls};
}

void bench_pingpong_tls(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(50'000);
  auto [plain, tls] = plain_then_tls([&](node_a& na) { return measure_pingpong(na, n, runs); });
  troupe::bench::report(
      "remote_pingpong_tls", tls, "roundtrips/s", plain,
      "remote_pingpong (plaintext link), same two processes", "report", a,
      "\"roundtrips\":" + std::to_string(n) + ",\"payload_bytes\":64,\"tls\":\"TLSv1.3 mutual\"");
}

void bench_tell_stream_tls(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(5'000'000);
  const std::uint64_t batch = 8192;
  const std::size_t loops = 2;
  auto [plain, tls] =
      plain_then_tls([&](node_a& na) { return measure_stream(na, n, batch, loops, runs); });
  troupe::bench::report(
      "remote_tell_stream_tls", tls, "msgs/s", plain,
      "remote_tell_stream (plaintext link), same two processes", "ratio >= 0.5", a,
      "\"msgs\":" + std::to_string(n) + ",\"batch\":" + std::to_string(batch) +
          ",\"batches_in_flight\":" + std::to_string(loops) + ",\"tls\":\"TLSv1.3 mutual\"");
}

void bench_pingpong(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(50'000);
  child_process child([](int c, int r) { return child_main(workload::pingpong, c, r); });
  double raw = 0;
  {
    fd_guard s = connect_loopback(static_cast<std::uint16_t>(child.receive(10s, "raw port")));
    raw_pingpong(s.fd, std::min<std::uint64_t>(n, 1000));  // warm-up
    raw = troupe::bench::median_of(runs, [&] { return raw_pingpong(s.fd, n); });
  }
  child.command(cmd_start_node);
  double v = 0;
  {
    node_a na(static_cast<std::uint16_t>(child.receive(30s, "node port")));
    v = measure_pingpong(na, n, runs);
  }
  child.finish();
  troupe::bench::report("remote_pingpong", v, "roundtrips/s", raw,
                        "raw blocking sockets ping-pong, " + raw_bytes_text +
                            " each way, TCP_NODELAY, same two processes",
                        ">= 60000 [CAF 12122]", a,
                        "\"roundtrips\":" + std::to_string(n) + ",\"payload_bytes\":64");
}

void bench_pipelined(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(1'000'000);
  child_process child([](int c, int r) { return child_main(workload::pipelined, c, r); });
  double raw = 0;
  {
    fd_guard s = connect_loopback(static_cast<std::uint16_t>(child.receive(10s, "raw port")));
    raw_pipelined(s.fd, std::min<std::uint64_t>(n, 10'000), pipelined_window);  // warm-up
    raw = troupe::bench::median_of(runs, [&] { return raw_pipelined(s.fd, n, pipelined_window); });
  }
  child.command(cmd_start_node);
  double v = 0;
  {
    node_a na(static_cast<std::uint16_t>(child.receive(30s, "node port")));
    auto c = na.rt.spawn<window_client>(na.remote);
    auto round = [&](std::uint64_t k) {
      std::promise<bool> done;
      auto f = done.get_future();
      auto t0 = std::chrono::steady_clock::now();
      if (c.tell(run_window{k, pipelined_window, &done})) fail("remote_pipelined: tell failed");
      if (f.wait_for(120s) != std::future_status::ready)
        fail("remote_pipelined: not done in 120 s");
      double secs = troupe::bench::seconds_since(t0);
      if (!f.get()) fail("remote_pipelined: an ask failed or timed out");
      return static_cast<double>(k) / secs;
    };
    round(std::min<std::uint64_t>(n, 10'000));  // warm-up
    v = troupe::bench::median_of(runs, [&] { return round(n); });
  }
  child.finish();
  troupe::bench::report(
      "remote_pipelined", v, "msgs/s", raw,
      "raw sockets, 1000 x " + raw_bytes_text +
          " outstanding, batched writes and reads (poll), child echoes in bulk, same two processes",
      ">= 3000000 [CAF 93570]", a,
      "\"outstanding\":" + std::to_string(pipelined_window) + ",\"msgs\":" + std::to_string(n));
}

void bench_tell_stream(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(5'000'000);
  const std::uint64_t batch = 8192;
  const std::size_t loops = 2;
  child_process child([](int c, int r) { return child_main(workload::tell_stream, c, r); });
  // Each raw run ends at EOF, so each takes its own connection.
  bool uring = false;
  const auto raw_port = static_cast<std::uint16_t>(child.receive(10s, "raw port"));
  const double raw = troupe::bench::median_of(runs, [&] {
    fd_guard s = connect_loopback(raw_port);
    return raw_stream(s.fd, n, uring);
  });
  child.command(cmd_start_node);
  double v = 0;
  {
    node_a na(static_cast<std::uint16_t>(child.receive(30s, "node port")));
    v = measure_stream(na, n, batch, loops, runs);
  }
  child.finish();
  troupe::bench::report("remote_tell_stream", v, "msgs/s", raw,
                        (uring ? "raw liburing io_uring_prep_send / recv, "
                               : "raw blocking send / recv (io_uring unavailable), ") +
                            raw_bytes_text + " per message in 64 KiB writes, same two processes",
                        ">= 10000000", a,
                        "\"msgs\":" + std::to_string(n) + ",\"batch\":" + std::to_string(batch) +
                            ",\"batches_in_flight\":" + std::to_string(loops));
}

// Routed against direct: the same tell stream to the same server, through
// the ring-router by key (every key owned by node B) and through a remote
// ref, alternating rounds in one run.
void bench_routed(const troupe::bench::args& a, int runs) {
  const std::uint64_t n = a.scale(2'000'000);
  const std::uint64_t batch = 8192;
  const std::size_t loops = 2;
  child_process child([](int c, int r) { return child_main(workload::routed, c, r); });
  child.command(cmd_start_node);
  double direct = 0, routed = 0, direct_cpu = 0, routed_cpu = 0;
  {
    node_a na(static_cast<std::uint16_t>(child.receive(30s, "node port")));
    troupe::actors::router router{na.node};
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (router.members().size() != 2) {
      if (std::chrono::steady_clock::now() > end) fail("the router did not see node B in 10 s");
      std::this_thread::yield();
    }
    std::vector<std::string> keys;
    for (int i = 0; keys.size() < 1024; ++i) {  // a power of two (streamer)
      std::string k = "key-" + std::to_string(i);
      if (router.owner(k).value() == node_b_name) keys.push_back(std::move(k));
    }
    auto direct_st = na.rt.spawn<streamer>(na.remote);
    auto routed_st = na.rt.spawn<streamer>(na.remote, &na.node, &keys);
    // The sender's CPU per message of the last round (see run_stream).
    double cpu_per_msg = 0;
    auto round = [&](troupe::actor_ref<streamer>& st, std::uint64_t k) {
      std::promise<bool> done;
      auto f = done.get_future();
      std::int64_t cpu_ns = 0;
      auto t0 = std::chrono::steady_clock::now();
      if (st.tell(run_stream{k, batch, loops, &done, &cpu_ns}))
        fail("ring_routed_over_direct: tell failed");
      if (f.wait_for(300s) != std::future_status::ready)
        fail("ring_routed_over_direct: not done in 300 s");
      double secs = troupe::bench::seconds_since(t0);
      if (!f.get()) fail("ring_routed_over_direct: a tell or an ask failed, or the count is off");
      cpu_per_msg = static_cast<double>(cpu_ns) / static_cast<double>(k);
      return static_cast<double>(k) / secs;
    };
    round(direct_st, std::min<std::uint64_t>(n, 100'000));  // warm-up
    round(routed_st, std::min<std::uint64_t>(n, 100'000));
    std::vector<double> d, r, d_cpu, r_cpu;
    for (int i = 0; i < runs; ++i) {
      d.push_back(round(direct_st, n));
      d_cpu.push_back(cpu_per_msg);
      r.push_back(round(routed_st, n));
      r_cpu.push_back(cpu_per_msg);
    }
    auto median = [](std::vector<double>& v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    direct = median(d);
    routed = median(r);
    direct_cpu = median(d_cpu);
    routed_cpu = median(r_cpu);
  }
  child.finish();
  troupe::bench::report("ring_routed_over_direct", routed, "msgs/s", direct,
                        "the same 64-byte tell stream to a remote ref (no routing), same run",
                        "ratio >= 0.8", a,
                        "\"msgs\":" + std::to_string(n) + ",\"keys\":1024" +
                            ",\"sender_cpu_ns_per_msg_routed\":" + std::to_string(routed_cpu) +
                            ",\"sender_cpu_ns_per_msg_direct\":" + std::to_string(direct_cpu));
}

// CPU seconds of another process: its CPU-time clock (ns), and
// /proc/<pid>/stat utime + stime (clock ticks) as a cross-check.
double cpu_seconds_of(pid_t pid) {
  clockid_t clk;
  timespec ts{};
  if (::clock_getcpuclockid(pid, &clk) != 0 || ::clock_gettime(clk, &ts) != 0)
    fail("cannot read the child's CPU clock");
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double proc_stat_cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream is(s.substr(p + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && is >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct cpu_window {
  double parent_percent, child_percent, child_percent_proc_stat;
};
cpu_window cpu_over(pid_t child, std::chrono::milliseconds window) {
  const double p0 = troupe::bench::process_cpu_seconds(), c0 = cpu_seconds_of(child),
               s0 = proc_stat_cpu_seconds(child);
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(window);  // measuring idleness: nothing to wait for
  const double wall = troupe::bench::seconds_since(t0);
  return {100.0 * (troupe::bench::process_cpu_seconds() - p0) / wall,
          100.0 * (cpu_seconds_of(child) - c0) / wall,
          100.0 * (proc_stat_cpu_seconds(child) - s0) / wall};
}

void bench_idle(const troupe::bench::args& a) {
  const auto window = a.smoke ? 200ms : 2000ms;
  child_process child([](int c, int r) { return child_main(workload::idle, c, r); });
  // Baseline: the same two processes, no runtime in either (the child waits
  // on its command pipe, the parent sleeps).
  const cpu_window base = cpu_over(child.pid(), window);
  child.command(cmd_start_node);
  cpu_window v{};
  std::uint64_t frames = 0;
  {
    node_a na(static_cast<std::uint16_t>(child.receive(30s, "node port")));
    for (int i = 0; i < 1000; ++i)
      if (!na.rt.ask_sync(na.remote, ping_msg{payload()}, 5s)) fail("remote_idle: an ask failed");
    std::this_thread::sleep_for(50ms);  // let the spin windows pass
    const std::uint64_t f0 = na.frames_in() + na.frames_out();
    v = cpu_over(child.pid(), window);
    frames = na.frames_in() + na.frames_out() - f0;
  }
  child.finish();
  troupe::bench::report(
      "remote_idle_cpu_percent", v.parent_percent + v.child_percent, "% of one core",
      base.parent_percent + base.child_percent,
      "same two processes, no runtime (parent sleeping, child blocked on its pipe)", "<= 2", a,
      "\"parent_percent\":" + fmt(v.parent_percent) + ",\"child_percent\":" + fmt(v.child_percent) +
          ",\"child_percent_proc_stat\":" + fmt(v.child_percent_proc_stat) +
          ",\"child_cpu_source\":\"clock_getcpuclockid(child), ns; proc_stat = /proc/pid/stat "
          "utime+stime in 10 ms ticks\",\"window_ms\":" +
          std::to_string(window.count()) +
          ",\"heartbeat_ms\":" + std::to_string(node_options_for(node_a_name).heartbeat.count()) +
          ",\"link_frames_in_window\":" + std::to_string(frames) + ",\"shards_per_node\":2");
}

}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const int runs = a.smoke ? 1 : 5;
  // A peer that closes its socket must not kill us with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
  // A workload that fails says why on stderr, prints no JSON line, and makes
  // the exit status nonzero; the others still run.
  int failed = 0;
  auto run = [&](const char* name, auto&& body) {
    if (!a.wants(name)) return;
    try {
      body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "remote_bench: %s failed: %s\n", name, e.what());
      ++failed;
    }
  };
  run("remote_pingpong", [&] { bench_pingpong(a, runs); });
  run("remote_pipelined", [&] { bench_pipelined(a, runs); });
  run("remote_tell_stream", [&] { bench_tell_stream(a, runs); });
  run("remote_pingpong_tls", [&] { bench_pingpong_tls(a, runs); });
  run("remote_tell_stream_tls", [&] { bench_tell_stream_tls(a, runs); });
  run("remote_idle_cpu_percent", [&] { bench_idle(a); });
  run("ring_routed_over_direct", [&] { bench_routed(a, runs); });
  return failed == 0 ? 0 : 1;
}
