// SPDX-License-Identifier: BSL-1.0
#include "prom_text.hpp"

#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace troupe::net::prom {

std::string number(double v) {
  char buf[400];  // fixed notation of any double fits
  // The shortest fixed-point text that reads back exactly (0.0005, not 5e-04).
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  return ec == std::errc{} ? std::string(buf, end) : std::string("NaN");
}

void histogram_header(std::ostream& os, std::string_view name, std::string_view help) {
  os << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
}

void histogram_series(std::ostream& os, std::string_view name, std::string_view labels,
                      const latency_histogram& h) {
  const std::string sep = labels.empty() ? "" : ",";
  for (std::size_t i = 0; i < latency_histogram::bounds.size(); ++i)
    os << name << "_bucket{" << labels << sep << "le=\"" << number(latency_histogram::bounds[i])
       << "\"} " << h.cumulative(i) << '\n';
  os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << h.count() << '\n';
  const std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  os << name << "_sum" << braces << ' ' << number(h.sum_seconds) << '\n';
  os << name << "_count" << braces << ' ' << h.count() << '\n';
}

namespace {

void gauge(std::ostream& os, const char* name, const char* type, const char* help, double v) {
  os << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
     << name << ' ' << number(v) << '\n';
}

// The fields of /proc/self/stat after the command name (field 3 on).
std::vector<std::string> stat_fields() {
  std::ifstream f("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::size_t close = all.rfind(')');  // the name may hold spaces and parentheses
  std::vector<std::string> out;
  if (close == std::string::npos) return out;
  std::istringstream rest(all.substr(close + 1));
  for (std::string w; rest >> w;) out.push_back(w);
  return out;
}

// Seconds since the epoch at boot (btime in /proc/stat), or -1.
long long boot_time() {
  std::ifstream f("/proc/stat");
  for (std::string key; f >> key;) {
    if (key == "btime") {
      long long t = -1;
      f >> t;
      return t;
    }
    f.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return -1;
}

}  // namespace

void process_metrics(std::ostream& os) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const std::vector<std::string> s = stat_fields();
  // Fields counted from 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
  auto field = [&s](std::size_t n) { return std::stod(s.at(n - 3)); };
  if (s.size() >= 22 && ticks > 0) {
    gauge(os, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.",
          (field(14) + field(15)) / ticks);
    gauge(os, "process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes.", field(23));
    gauge(os, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.",
          field(24) * page);
    if (const long long boot = boot_time(); boot >= 0)
      gauge(os, "process_start_time_seconds", "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            static_cast<double>(boot) + field(22) / ticks);
  }
  std::error_code ec;
  std::size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec))
    ++fds;
  if (!ec)
    gauge(os, "process_open_fds", "gauge", "Open file descriptors.", static_cast<double>(fds));
  if (const long max = ::sysconf(_SC_OPEN_MAX); max > 0)
    gauge(os, "process_max_fds", "gauge", "The most file descriptors the process may open.",
          static_cast<double>(max));
}

}  // namespace troupe::net::prom
