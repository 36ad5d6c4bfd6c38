// SPDX-License-Identifier: BSL-1.0
// 04_remote_actors: two nodes, one actor reached across the network.
//
// Two runtimes in one process stand in for two machines: node-b publishes a
// bank, node-a looks it up and uses the remote ref exactly like a local one.
// Everything that crosses the wire is registered with TROUPE_REMOTE_MESSAGE.

#include <cstdio>
#include <thread>
#include <troupe/net/node.hpp>

using namespace std::chrono_literals;

// 1. Messages that cross the wire: plain structs with a cereal serialize().
struct deposit {
  std::string account;
  std::int64_t cents = 0;
  template <class A>
  void serialize(A& a) {
    a(account, cents);
  }
};
struct balance {
  std::string account;
  template <class A>
  void serialize(A& a) {
    a(account);
  }
};
// A stable id per type: nodes of one cluster must agree on them.
TROUPE_REMOTE_MESSAGE(deposit, 1);
TROUPE_REMOTE_MESSAGE(balance, 2);

// 2. The actor. remote_messages lists what other nodes may send it.
class bank : public troupe::actor {
 public:
  using remote_messages = troupe::net::message_list<deposit, balance>;
  void handle(deposit d) { cents_[d.account] += d.cents; }
  std::int64_t handle(balance b) { return cents_[b.account]; }  // replies of plain types need no id

 private:
  std::unordered_map<std::string, std::int64_t> cents_;
};

int main() {
  // 3. node-b: a runtime, a node listening on an ephemeral loopback port, the bank published.
  troupe::runtime rb{troupe::runtime_options{.shards = 1}};
  troupe::net::node_options ob;
  ob.name = "node-b";
  ob.secret = "example-secret";  // nodes prove they share it (HMAC challenge)
  troupe::net::node b{rb, ob};
  b.publish(rb.spawn<bank>(), "bank");

  // 4. node-a: dials node-b as a seed.
  troupe::runtime ra{troupe::runtime_options{.shards = 1}};
  troupe::net::node_options oa;
  oa.name = "node-a";
  oa.secret = "example-secret";
  oa.seeds = {{"127.0.0.1", b.port()}};
  troupe::net::node a{ra, oa};

  // 5. Look the bank up by name. The link may still be coming up: retry briefly.
  troupe::result<troupe::actor_ref<bank>> remote = a.remote_sync<bank>("node-b", "bank", 1s);
  for (int i = 0; i < 100 && !remote; ++i) {
    std::this_thread::sleep_for(20ms);  // waiting for the handshake, nothing to synchronise on
    remote = a.remote_sync<bank>("node-b", "bank", 1s);
  }
  if (!remote) {
    std::printf("lookup failed: %s\n", remote.error().message().c_str());
    return 1;
  }

  // 6. Use it like a local ref: tell, then ask. Order from one sender holds across the link.
  (void)remote->tell(deposit{"alice", 500});
  (void)remote->tell(deposit{"alice", 250});
  troupe::result<std::int64_t> c = ra.ask_sync(*remote, balance{"alice"}, 2s);
  std::printf("node-a asked node-b's bank: alice has %lld cents\n",
              static_cast<long long>(c.value()));
  return c.value() == 750 ? 0 : 1;
}
