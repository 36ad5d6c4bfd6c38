// SPDX-License-Identifier: BSL-1.0
#pragma once
// A cluster of troupe-node processes, each in a network namespace of its
// own, with two networks: the cluster network (node to node) and the client
// network (this process to each node's HTTP gateway). Cutting a node's
// cluster link leaves its clients reaching it — a partition as operators
// meet it. Needs root (ip netns); every namespace, bridge and process is
// removed when the object goes, and leftovers of a crashed run with the
// same names are removed first.
//
//   cluster bridge tpc<id>: 10.77.<k>.1..N   (node i's veth "c0")
//   client bridge  tph<id>: 10.78.<k>.1..N   (node i's veth "h0"), this host 10.78.<k>.254

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/node_process.hpp"

namespace troupe::test {

inline bool run_quiet(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

/// One troupe-node process in a namespace; its output kept (read by a thread).
class ns_node {
 public:
  ns_node(const std::string& netns, std::vector<std::string> args)
      : p_(std::move(args), {}, netns), reader_([this] {
          for (;;) {
            std::string l = p_.line();
            if (p_.at_eof() && l.empty()) break;
            std::lock_guard g(m_);
            output_ += l + "\n";
          }
        }) {}
  ~ns_node() {
    kill(SIGKILL);
    if (reader_.joinable()) reader_.join();  // the pipe ends with the process
  }
  /// Sends `sig`; after SIGKILL or SIGTERM, waits for the process to end.
  void kill(int sig) {
    if (exited_) return;
    p_.signal(sig);
    if (sig == SIGKILL || sig == SIGTERM) {
      p_.wait_exit();
      exited_ = true;
    }
  }
  void signal(int sig) { p_.signal(sig); }
  std::string output() {
    std::lock_guard g(m_);
    return output_;
  }
  bool said(const std::string& needle) { return output().find(needle) != std::string::npos; }

 private:
  node_process p_;
  bool exited_ = false;
  std::mutex m_;
  std::string output_;
  std::thread reader_;  // last: it starts once the rest is built
};

/// The namespaces and bridges of one run.
class netns_cluster {
 public:
  explicit netns_cluster(int nodes) : n_(nodes) {
    const int id = static_cast<int>(::getpid() % 100000);
    tag_ = std::to_string(id);
    k_ = 100 + id % 100;
    remove();  // leftovers of a crashed run with the same id
    ok_ = run_quiet("ip link add " + bridge('c') + " type bridge") &&
          run_quiet("ip link set " + bridge('c') + " up") &&
          run_quiet("ip link add " + bridge('h') + " type bridge") &&
          run_quiet("ip addr add " + client_net() + "254/24 dev " + bridge('h')) &&
          run_quiet("ip link set " + bridge('h') + " up");
    for (int i = 0; ok_ && i < n_; ++i) {
      const std::string ns = netns(i);
      ok_ = run_quiet("ip netns add " + ns) && run_quiet("ip -n " + ns + " link set lo up");
      for (char net : {'c', 'h'}) {
        const std::string host_end = veth(net, i);
        const std::string inner = std::string(1, net) + "0";
        const std::string addr =
            (net == 'c' ? cluster_net() : client_net()) + std::to_string(i + 1);
        ok_ = ok_ &&
              run_quiet("ip link add " + host_end + " type veth peer name " + inner + " netns " +
                        ns) &&
              run_quiet("ip link set " + host_end + " master " + bridge(net) + " up") &&
              run_quiet("ip -n " + ns + " addr add " + addr + "/24 dev " + inner) &&
              run_quiet("ip -n " + ns + " link set " + inner + " up");
      }
    }
  }
  ~netns_cluster() { remove(); }
  netns_cluster(const netns_cluster&) = delete;
  netns_cluster& operator=(const netns_cluster&) = delete;

  bool ok() const noexcept { return ok_; }
  std::string netns(int i) const { return "tp" + tag_ + "n" + std::to_string(i); }
  /// Node i's address on the cluster network, and on the client network.
  std::string cluster_ip(int i) const { return cluster_net() + std::to_string(i + 1); }
  std::string client_ip(int i) const { return client_net() + std::to_string(i + 1); }
  /// Cuts node i off the cluster network (its clients still reach it), or mends it.
  bool cut(int i, bool off) {
    return run_quiet("ip link set " + veth('c', i) + (off ? " down" : " up"));
  }

 private:
  std::string cluster_net() const { return "10.77." + std::to_string(k_) + "."; }
  std::string client_net() const { return "10.78." + std::to_string(k_) + "."; }
  std::string bridge(char net) const { return std::string("tp") + net + tag_; }
  std::string veth(char net, int i) const {
    return std::string("tp") + net + tag_ + "v" + std::to_string(i);
  }
  void remove() {
    for (int i = 0; i < n_; ++i) run_quiet("ip netns del " + netns(i));  // takes its veths
    run_quiet("ip link del " + bridge('c'));
    run_quiet("ip link del " + bridge('h'));
  }
  int n_;
  std::string tag_;
  int k_ = 100;
  bool ok_ = false;
};

}  // namespace troupe::test
