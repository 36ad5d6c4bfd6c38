// SPDX-License-Identifier: BSL-1.0
#pragma once
// The Prometheus text format (version 0.0.4), as troupe-node's /metrics
// writes it: escaped label values, histograms, and the process metrics
// every exporter gives (CPU, memory, descriptors, start time).

#include <ostream>
#include <string>
#include <string_view>
#include <troupe/core/histogram.hpp>

namespace troupe::net::prom {

/// A sample value or bound: the shortest text that reads back exactly.
std::string number(double v);
/// `# HELP` and `# TYPE name histogram`, once per metric family.
void histogram_header(std::ostream& os, std::string_view name, std::string_view help);
/// One series of a histogram family: _bucket per bound and +Inf, _sum,
/// _count. `labels` are written as given, before `le`: `route="/x",method="GET"`
/// (values escaped by the caller: troupe/net/prometheus.hpp), or empty.
void histogram_series(std::ostream& os, std::string_view name, std::string_view labels,
                      const latency_histogram& h);

/// process_cpu_seconds_total, process_resident_memory_bytes,
/// process_virtual_memory_bytes, process_open_fds, process_max_fds,
/// process_start_time_seconds, read from /proc (absent ones are left out).
void process_metrics(std::ostream& os);

}  // namespace troupe::net::prom
