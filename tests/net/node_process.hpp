// SPDX-License-Identifier: BSL-1.0
#pragma once
// troupe-node (TROUPE_NODE_BIN) in a child process, its stdout and stderr
// read line by line: the tests of the binary itself.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

namespace troupe::test {

// troupe-node in a child process; stdout and stderr captured.
class node_process {
 public:
  // `netns`: run it in that network namespace (/run/netns/NAME; root only).
  explicit node_process(std::vector<std::string> args,
                        std::vector<std::pair<std::string, std::string>> env = {},
                        const std::string& netns = {}) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::close(out[0]);
      for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
      if (!netns.empty()) {
        const int fd = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ::_exit(126);
      }
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(TROUPE_NODE_BIN));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(TROUPE_NODE_BIN, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~node_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  // The next line of output ("" at EOF).
  std::string line() {
    std::string l;
    char c;
    while (::read(out_, &c, 1) == 1) {
      seen_ += c;
      if (c == '\n') return l;
      l += c;
    }
    eof_ = true;
    return l;
  }
  // Reads lines until one contains `needle`; returns it ("" at EOF, and
  // everything read so far goes to the test's log).
  std::string until(const std::string& needle) {
    for (;;) {
      std::string l = line();
      if (l.find(needle) != std::string::npos) return l;
      if (eof_) {
        UNSCOPED_INFO("troupe-node said:\n" << seen_);
        return {};
      }
    }
  }
  int wait_exit() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void signal(int s) { ::kill(pid_, s); }
  bool at_eof() const noexcept { return eof_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool eof_ = false;
  std::string seen_;
};

}  // namespace troupe::test
