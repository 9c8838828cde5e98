#include "coordinator/report.h"

#include <cerrno>
#include <cinttypes>

#include <nlohmann/json.hpp>

namespace thumbmill {

Result<ReportWriter> ReportWriter::Open(const std::string& path) {
  if (path.empty()) return ReportWriter();
  std::FILE* file = std::fopen(path.c_str(), "we");  // e: close-on-exec
  if (!file) return Status::FromErrno("--report: cannot write " + path);
  return ReportWriter(file);
}

ReportWriter::~ReportWriter() {
  if (file_) std::fclose(file_);
}

std::string ReportWriter::ToJson(const SourceResult& r) {
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& o : r.outputs)
    outputs.push_back({{"path", o.path}, {"width", o.width}, {"height", o.height}, {"bytes", o.bytes}});
  nlohmann::json j = {
      {"url", r.url},
      {"line", r.line},
      {"status", r.ok ? "ok" : "failed"},
      {"outputs", std::move(outputs)},
      {"bytes_downloaded", r.bytes_downloaded},
      {"attempts", r.attempts},
      {"fetch_attempts", r.fetch_attempts},
      {"ms", r.ms},
  };
  if (r.skipped) j["skipped"] = true;
  if (r.http_status) j["http_status"] = r.http_status;
  if (!r.ok) {
    j["error"] = r.error;
    j["error_code"] = code_name(r.code);
  }
  // Replace, not throw, on bytes that are not UTF-8 (a list may hold any).
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ReportWriter::Write(const SourceResult& result) {
  if (!file_) return;
  const std::string line = ToJson(result) + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

std::string human_bytes(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string format_progress(const RunTotals& t, double elapsed_s) {
  const std::uint64_t done = t.ok + t.failed + t.skipped;
  const double rate = elapsed_s > 0 ? static_cast<double>(t.ok) / elapsed_s : 0;
  const std::string total = std::to_string(t.sources_read) + (t.list_done ? "" : "+");
  char buf[256];
  std::snprintf(buf, sizeof buf, "%6" PRIu64 " ok %5" PRIu64 " failed  %" PRIu64 "/%s  %6.1f img/s  in %s  out %s  %d:%02d",
                t.ok + t.skipped, t.failed, done, total.c_str(), rate, human_bytes(t.bytes_in).c_str(),
                human_bytes(t.bytes_out).c_str(), static_cast<int>(elapsed_s) / 60,
                static_cast<int>(elapsed_s) % 60);
  return buf;
}

std::string format_summary(const RunTotals& t, double wall_s, const std::vector<ProcessRow>& rows) {
  std::string out;
  char buf[256];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
  };
  const double rate = wall_s > 0 ? static_cast<double>(t.ok) / wall_s : 0;
  line("images      %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " skipped (already done)", t.ok,
       t.failed, t.skipped);
  if (t.duplicates) line(", %" PRIu64 " duplicate lines ignored", t.duplicates);
  line("\nthumbnails  %" PRIu64 " written, %s\n", t.thumbnails, human_bytes(t.bytes_out).c_str());
  line("downloaded  %s\n", human_bytes(t.bytes_in).c_str());
  line("wall time   %.2f s, %.1f images/s\n\n", wall_s, rate);
  line("%-12s %8s %9s %9s %10s %7s  %s\n", "process", "pid", "user s", "sys s", "peak RSS", "jobs", "ended");
  for (const ProcessRow& r : rows)
    line("%-12s %8d %9.2f %9.2f %7.1f MB %7" PRIu64 "  %s\n", r.role.c_str(), r.pid, r.usage.user_s,
         r.usage.system_s, r.usage.max_rss_kb / 1024.0, r.jobs, r.ended.c_str());
  return out;
}

}  // namespace thumbmill
