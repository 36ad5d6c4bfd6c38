// SPDX-License-Identifier: BSL-1.0
// The HTTP gateway under wrk (keep-alive, 2 threads), against a troupe-node
// child process started by this program:
//
//   http_ring_owner  GET /api/v1/ring/owner?key=K, 50 connections; req/s
//   http_lock_cycle  acquire + release over HTTP, 50 connections, a fresh
//                    lock name per pair; pairs/s (requests/s over 2)
//   http_saga_start  POST /api/v1/sagas/troupe.selftest (a 3-step saga, the
//                    node's SQLite store in a temporary --data-dir), 50
//                    connections; sagas/s (answered once durably stored)
//   http_ring_owner_tls  http_ring_owner over HTTPS (TLS 1.3, wrk's
//                    connections kept alive) on a second troupe-node started
//                    with --tls-cert/--tls-key/--tls-ca; baseline:
//                    http_ring_owner on the plaintext node, in the same run
//
// Baseline, same node, same wrk settings: GET /healthz (the gateway with no
// actor behind the route).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <troupe/core.hpp>
#include <vector>

#include "bench.hpp"
#include "net/tls_certs.hpp"  // a throwaway CA for http_ring_owner_tls (tests/net)

namespace {

[[noreturn]] void fail(const std::string& why) { throw std::runtime_error(why); }

class node_process {
 public:
  // `extra`: more flags; `tag` keeps this node's data dir apart from another's.
  explicit node_process(std::vector<std::string> extra = {}, std::string tag = {})
      : tag_(std::move(tag)) {
    int out[2];
    if (::pipe(out) != 0) fail("pipe");
    pid_ = ::fork();
    if (pid_ < 0) fail("fork");
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::close(out[0]);
      std::vector<std::string> args{TROUPE_NODE_BIN, "--name",   "bench-http",  "--listen",
                                    "127.0.0.1:0",   "--http",   "127.0.0.1:0", "--lock-max-ttl-ms",
                                    "1000",          "--shards", "2",           "--data-dir",
                                    data_dir()};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& x : args) argv.push_back(x.data());
      argv.push_back(nullptr);
      ::execv(TROUPE_NODE_BIN, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    // The log's start line names the ports; warnings may come first.
    std::string line, said;
    for (char c; line.find("http 127.0.0.1:") == std::string::npos;) {
      line.clear();
      bool eof = true;
      while (::read(out[0], &c, 1) == 1) {
        eof = false;
        if (c == '\n') break;
        line += c;
      }
      said += line + "\n";
      if (eof) fail("troupe-node did not start: " + said);
    }
    ::close(out[0]);
    const auto at = line.find("http 127.0.0.1:");
    port_ = std::stoi(line.substr(at + 15));
  }
  ~node_process() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::error_code ec;
    std::filesystem::remove_all(data_dir(), ec);
  }
  std::string data_dir() const {
    return "/tmp/troupe-http-bench-" + std::to_string(::getpid()) + tag_;
  }
  int port() const { return port_; }

 private:
  std::string tag_;
  pid_t pid_ = -1;
  int port_ = 0;
};

struct wrk_result {
  double rps = 0;
  long non_2xx = 0;
  std::string p99;
};

wrk_result run_wrk(const std::string& args) {
  const std::string cmd = "wrk " + args + " 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) fail("cannot run wrk (installed? scripts/bootstrap installs it)");
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  if (::pclose(f) != 0) fail("wrk failed: " + out);
  wrk_result r;
  auto rps = out.find("Requests/sec:");
  if (rps == std::string::npos) fail("no Requests/sec in wrk's output: " + out);
  r.rps = std::stod(out.substr(rps + 13));
  if (auto n = out.find("Non-2xx or 3xx responses:"); n != std::string::npos)
    r.non_2xx = std::stol(out.substr(n + 25));
  if (auto p = out.find("99%"); p != std::string::npos) {
    std::size_t b = out.find_first_not_of(' ', p + 3), e = out.find('\n', p);
    r.p99 = out.substr(b, e - b);
  }
  return r;
}

// Each wrk thread acquires locks under fresh names (owner "w<thread>") and
// releases each as soon as its grant comes back, on whichever connection is
// free next: 50 connections stay busy (wrk does not tell a script which
// connection answered, so a grant's name travels in its reply).
std::string lock_script() {
  const std::string path = "/tmp/troupe-http-bench-" + std::to_string(::getpid()) + ".lua";
  std::ofstream(path) << R"LUA(
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("id", counter)
end
local n = 0
local grants = {}
local headers = {["Content-Type"] = "application/json"}
request = function()
  local g = table.remove(grants)
  if g ~= nil then
    return wrk.format("POST", "/api/v1/locks/" .. g[1] .. "/release", headers,
      '{"owner":"w' .. id .. '","token":"' .. g[2] .. '"}')
  end
  n = n + 1
  return wrk.format("POST", "/api/v1/locks/b" .. id .. "-" .. n .. "/acquire", headers,
    '{"owner":"w' .. id .. '","ttl_ms":1000,"wait_ms":2000}')
end
response = function(status, headers, body)
  if string.find(body, '"released"', 1, true) == nil then
    local name, token = string.match(body, '"name":"([^"]+)","token":"(%d+)"')
    if name ~= nil then table.insert(grants, {name, token}) end
  end
end
)LUA";
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  auto a = troupe::bench::args::parse(argc, argv);
  const std::string secs = a.smoke ? "1s" : "5s";
  ::signal(SIGPIPE, SIG_IGN);
  int failed = 0;
  try {
    node_process node;
    const std::string base_url = "http://127.0.0.1:" + std::to_string(node.port());
    if (a.wants("http_ring_owner")) {
      const std::string opts = "-t2 -c50 -d" + secs + " --latency ";
      wrk_result base = run_wrk(opts + base_url + "/healthz");
      wrk_result v = run_wrk(opts + base_url + "/api/v1/ring/owner?key=orders%2F42");
      if (v.non_2xx != 0) fail("http_ring_owner: non-2xx responses");
      troupe::bench::report("http_ring_owner", v.rps, "req/s", base.rps,
                            "GET /healthz on the same gateway, same wrk settings", ">= 50000", a,
                            "\"wrk\":\"-t2 -c50\",\"p99\":\"" + v.p99 + "\"");
    }
    if (a.wants("http_ring_owner_tls")) {
      // The same node again with TLS; the plaintext figure is taken in this
      // run, right before, so both face the same machine.
      troupe::test::test_ca ca{"troupe bench CA"};
      const troupe::net::tls_options tls = ca.issue("bench-http", {"bench-http"});
      node_process tls_node(
          {"--tls-cert", tls.cert_file, "--tls-key", tls.key_file, "--tls-ca", tls.ca_file},
          "-tls");
      const std::string tls_url = "https://127.0.0.1:" + std::to_string(tls_node.port());
      const std::string opts = "-t2 -c50 -d" + secs + " --latency ";
      (void)run_wrk("-t1 -c1 -d1s " + tls_url + "/healthz");  // warm-up: handshakes, caches
      wrk_result plain = run_wrk(opts + base_url + "/api/v1/ring/owner?key=orders%2F42");
      wrk_result v = run_wrk(opts + tls_url + "/api/v1/ring/owner?key=orders%2F42");
      if (v.non_2xx != 0 || plain.non_2xx != 0) fail("http_ring_owner_tls: non-2xx responses");
      troupe::bench::report(
          "http_ring_owner_tls", v.rps, "req/s", plain.rps,
          "http_ring_owner on a plaintext node, same wrk settings, same run", "report", a,
          "\"wrk\":\"-t2 -c50, keep-alive\",\"tls\":\"TLSv1.3\",\"p99\":\"" + v.p99 + "\"");
    }
    if (a.wants("http_lock_cycle")) {
      const std::string script = lock_script();
      // The node's lock-delay (its max TTL, 1 s) must pass before the first
      // grant: a warm-up run waits it out.
      const std::string opts = "-t2 -c50 -d" + secs + " --latency ";
      (void)run_wrk("-t1 -c1 -d2s -s " + script + " " + base_url);
      wrk_result base = run_wrk(opts + base_url + "/healthz");
      wrk_result v = run_wrk(opts + "-s " + script + " " + base_url);
      std::remove(script.c_str());
      if (v.non_2xx != 0) fail("http_lock_cycle: non-2xx responses");
      troupe::bench::report(
          "http_lock_cycle", v.rps / 2, "pairs/s", base.rps / 2,
          "GET /healthz pairs on the same gateway, same wrk settings", ">= 15000", a,
          "\"wrk\":\"-t2 -c50, a fresh lock per pair\",\"p99\":\"" + v.p99 + "\"");
    }
    if (a.wants("http_saga_start")) {
      const std::string path = "/tmp/troupe-http-bench-saga-" + std::to_string(::getpid()) + ".lua";
      std::ofstream(path) << R"LUA(
wrk.method = "POST"
wrk.body = '{"input":{"note":"bench"}}'
wrk.headers["Content-Type"] = "application/json"
)LUA";
      const std::string opts = "-t2 -c50 -d" + secs + " --latency ";
      wrk_result base = run_wrk(opts + base_url + "/healthz");
      wrk_result v =
          run_wrk(opts + "-s " + path + " " + base_url + "/api/v1/sagas/troupe.selftest");
      std::remove(path.c_str());
      if (v.non_2xx != 0) fail("http_saga_start: non-2xx responses");
      troupe::bench::report("http_saga_start", v.rps, "sagas/s", base.rps,
                            "GET /healthz on the same gateway, same wrk settings", ">= 5000", a,
                            "\"wrk\":\"-t2 -c50\",\"store\":\"sqlite\",\"p99\":\"" + v.p99 + "\"");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_bench: %s\n", e.what());
    ++failed;
  }
  return failed == 0 ? 0 : 1;
}
