// SPDX-License-Identifier: BSL-1.0
#pragma once
// The bank the transport tests talk to, in-process and in a child process
// (troupe_test_node): one definition, so its type name matches on both sides.

#include <string>
#include <troupe/net/node.hpp>
#include <unordered_map>
#include <vector>

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
struct note {
  int sender = 0;
  int seq = 0;
  template <class A>
  void serialize(A& a) {
    a(sender, seq);
  }
};
struct notes {
  std::vector<int> seqs;
  template <class A>
  void serialize(A& a) {
    a(seqs);
  }
};
struct get_notes {
  template <class A>
  void serialize(A&) {}
};
struct local_only {  // no codec: must never reach the wire
  int x = 0;
};
TROUPE_REMOTE_MESSAGE(deposit, 101);
TROUPE_REMOTE_MESSAGE(balance, 102);
TROUPE_REMOTE_MESSAGE(note, 103);
TROUPE_REMOTE_MESSAGE(notes, 104);
TROUPE_REMOTE_MESSAGE(get_notes, 105);

namespace troupe_test {

class bank : public troupe::actor {
 public:
  using remote_messages = troupe::net::message_list<deposit, balance, note, get_notes>;
  troupe::task<void> handle(deposit d) {
    cents_[d.account] += d.cents;
    co_return;
  }
  std::int64_t handle(balance b) { return cents_[b.account]; }
  void handle(note n) { seqs_.push_back(n.seq); }
  notes handle(get_notes) { return notes{seqs_}; }
  void handle(local_only) {}

 private:
  std::unordered_map<std::string, std::int64_t> cents_;
  std::vector<int> seqs_;
};

}  // namespace troupe_test
