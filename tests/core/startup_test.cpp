// SPDX-License-Identifier: BSL-1.0
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "support.hpp"

namespace {
// In a child process: forbid io_uring_setup (as Docker's default seccomp
// profile does), start a runtime, and report what happened through a pipe.
std::string start_runtime_without_io_uring() {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0])), filter};
    std::string out;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      out = std::string("seccomp unavailable: ") + std::strerror(errno);
    } else {
      try {
        troupe::runtime_options o;
        o.shards = 1;
        troupe::runtime rt{o};
        out = "started";
      } catch (const troupe::startup_error& e) {
        out = std::string("startup_error: ") + e.what();
      } catch (const std::exception& e) {
        out = std::string("other: ") + e.what();
      }
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    got.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  return got;
}
}  // namespace

TEST_CASE("a host that forbids io_uring gets one clear start-up line naming TROUPE_IO=epoll",
          "[core][startup][io]") {
  std::string got = start_runtime_without_io_uring();
  INFO(got);
#if TROUPE_IO_URING
  REQUIRE(got.rfind("startup_error: ", 0) == 0);
  CHECK(got.find("io_uring") != std::string::npos);
  CHECK(got.find("-DTROUPE_IO=epoll") != std::string::npos);
  CHECK(got.find('\n') == std::string::npos);
#else
  // The epoll build is the way out: it starts where io_uring is forbidden.
  CHECK(got == "started");
#endif
}
