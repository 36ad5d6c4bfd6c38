// SPDX-License-Identifier: BSL-1.0
// An installed troupe's consumer: an actor that awaits an Asio timer (the
// case that hangs when the program's Asio settings differ from the
// library's), an ask, and the version. Exit status 0 when all of it works.

#include <boost/asio/steady_timer.hpp>
#include <iostream>
#include <troupe/actors/ring.hpp>
#include <troupe/core.hpp>
#include <troupe/net/node.hpp>
#include <troupe/saga.hpp>
#include <troupe/version.hpp>

using namespace std::chrono_literals;

struct nap {
  std::chrono::milliseconds ms;
};

class sleeper : public troupe::actor {
 public:
  troupe::task<int> handle(nap n) {
    boost::asio::steady_timer t{troupe::runtime::this_io(), n.ms};
    boost::system::error_code ec = co_await t.async_wait(troupe::use_task);
    co_return ec ? -1 : 42;
  }
};

int main() {
  troupe::runtime rt;
  auto s = rt.spawn<sleeper>();
  troupe::result<int> r = rt.ask_sync(s, nap{20ms}, 5s);
  troupe::actors::ring ring;
  (void)ring.add("a");
  std::cout << "troupe " << troupe::version << " (" << troupe::revision() << "): reply "
            << (r ? std::to_string(*r) : r.error().message()) << ", ring of " << ring.size()
            << "\n";
  return r && *r == 42 && std::string(troupe::version) == troupe::library_version() ? 0 : 1;
}
