#include "coordinator/report.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>

#include <nlohmann/json.hpp>

#include "shared/file_identity.h"

namespace thumbmill {

namespace {

Status with_flag(const Status& status) {
  return status.ok() ? status : Status(status.code(), "--report: " + status.message());
}

}  // namespace

Result<ReportWriter> ReportWriter::Open(const std::string& path) {
  if (path.empty()) return ReportWriter();
  auto file = CheckedFile::OpenForWriting(path);
  if (!file.ok()) return with_flag(file.status());
  return ReportWriter(std::move(file.value()));
}

Status ReportWriter::status() const { return with_flag(file_.status()); }

Status ReportWriter::Close() { return with_flag(file_.Close()); }

Status check_report_path(const Options& options) {
  if (options.report_path.empty()) return Status::Ok();
  // /dev/stdin resolves to whatever standard input is: a list redirected
  // from a file ("coordinator --report r.jsonl - < r.jsonl") is caught too.
  std::vector<KeptFile> keep = {{"the output directory", options.out_dir}};
  for (const std::string& input : options.inputs)
    keep.push_back({input == "-" ? "the list" : "the input " + input,
                    input == "-" ? std::filesystem::path("/dev/stdin") : std::filesystem::path(input)});
  return refuse_to_overwrite("--report", options.report_path, keep);
}

SourceResult failed_result(const SourceLine& line, Code code, std::string error) {
  SourceResult r;
  r.url = line.display;
  r.line = line.line_number;
  r.code = code;
  r.error = std::move(error);
  r.ticket = line.ticket;
  return r;
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
      {"fetch_ms", r.fetch_ms},
      {"resize_ms", r.resize_ms},
  };
  if (r.skipped) j["skipped"] = true;
  if (r.uploaded) {
    j["upload_attempts"] = r.upload_attempts;
    j["upload_bytes"] = r.upload_bytes;
    j["upload_ms"] = r.upload_ms;
  }
  if (r.http_status) j["http_status"] = r.http_status;
  if (!r.ok) {
    j["error"] = r.error;
    j["error_code"] = code_name(r.code);
  }
  // Replace, not throw, on bytes that are not UTF-8 (a list may hold any).
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ReportWriter::Write(const SourceResult& result) {
  if (!file_.is_open() || !file_.status().ok()) return;
  // One write(2) per line, unbuffered: a killed run's report is complete up
  // to its last line. A failure is kept in file_ (see status()).
  if (!file_.Write(ToJson(result) + "\n").ok()) return;  // kept: see status()
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

namespace {

/// "0:14", "12:03", "1:02:03".
std::string clock_time(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

/// "160 ok, 5 failed", with skipped and interrupted when there are any.
std::string outcome_counts(const RunTotals& t) {
  std::string out = std::to_string(t.ok) + " ok";
  if (t.skipped) out += ", " + std::to_string(t.skipped) + " skipped";
  out += ", " + std::to_string(t.failed) + " failed";
  if (t.interrupted) out += ", " + std::to_string(t.interrupted) + " interrupted";
  return out;
}

}  // namespace

std::string format_progress(const RunTotals& t, double elapsed_s) {
  const std::uint64_t done = t.done();
  const double rate = elapsed_s > 0 ? static_cast<double>(t.ok) / elapsed_s : 0;
  char rate_text[32];
  std::snprintf(rate_text, sizeof rate_text, "%.1f img/s", rate);
  if (!t.list_done)
    return std::to_string(done) + " done (" + outcome_counts(t) + "), " + rate_text + ", list still being read";
  std::string out = std::to_string(done) + " of " + std::to_string(t.sources_read) + " done (" + outcome_counts(t) +
                    "), " + rate_text;
  const std::uint64_t total = std::max<std::uint64_t>(t.sources_read, 1);
  out += ", " + std::to_string(std::min<std::uint64_t>(100, done * 100 / total)) + "%";
  // The ETA assumes the rest goes at the pace so far (every outcome
  // counted: failures and skips take time too).
  if (done > 0 && elapsed_s > 0 && done < t.sources_read) {
    const double left = static_cast<double>(t.sources_read - done);
    out += ", ETA " + clock_time(left * elapsed_s / static_cast<double>(done));
  }
  return out;
}

std::string format_failure_tally(const std::map<std::string, std::uint64_t>& by_code) {
  std::vector<std::pair<std::string, std::uint64_t>> sorted(by_code.begin(), by_code.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (const auto& [code, count] : sorted) {
    if (count == 0) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(count) + " " + code;
  }
  return out;
}

std::string format_source_line(const SourceResult& r) {
  if (!r.ok) return "thumbmill: failed: " + r.url + ": " + r.error + " [" + std::string(code_name(r.code)) + "]";
  if (r.skipped) return "thumbmill: skipped (already done): " + r.url;
  std::string out = "thumbmill: ok: " + r.url + ": " + std::to_string(r.outputs.size()) +
                    (r.outputs.size() == 1 ? " thumbnail" : " thumbnails");
  for (std::size_t i = 0; i < r.outputs.size(); ++i) out += (i ? " " : ": ") + r.outputs[i].path;
  return out;
}

std::string format_summary(const RunTotals& t, double wall_s, const std::vector<ProcessRow>& rows,
                           const std::string& destination) {
  std::string out;
  char buf[512];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
  };
  const double rate = wall_s > 0 ? static_cast<double>(t.ok) / wall_s : 0;
  line("images      %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " skipped (already done)", t.ok,
       t.failed, t.skipped);
  if (t.interrupted) line(", %" PRIu64 " interrupted", t.interrupted);
  if (t.duplicates) line(", %" PRIu64 " duplicate lines ignored", t.duplicates);
  if (t.stopped_early) {
    if (!t.not_started)
      line("\nnot started the rest of the list was not read");
    else if (*t.not_started)
      line("\nnot started %" PRIu64 " list %s never read", *t.not_started, *t.not_started == 1 ? "line" : "lines");
    if (!t.not_started || *t.not_started || t.interrupted)
      line("\n            the run stopped early: run the same command again to resume (done sources are skipped)");
  }
  line("\nthumbnails  %" PRIu64 " written, %s\n", t.thumbnails, human_bytes(t.bytes_out).c_str());
  line("downloaded  %s\n", human_bytes(t.bytes_in).c_str());
  line("wall time   %.2f s, %.1f images/s\n", wall_s, rate);
  if (t.worker_restarts || t.downloader_restarts || t.uploader_restarts)
    line("restarts    %" PRIu64 " worker, %" PRIu64 " downloader, %" PRIu64 " uploader (after crashes or kills)\n",
         t.worker_restarts, t.downloader_restarts, t.uploader_restarts);
  // The third stage's cost, which the seed's workflow asks about: CPU per
  // thumbnail stored and the largest resident size any uploader reached.
  double upload_cpu_s = 0;
  long upload_rss_kb = 0;
  bool uploaded = false;
  for (const ProcessRow& r : rows) {
    if (r.role != "uploader") continue;
    uploaded = true;
    upload_cpu_s += r.usage.user_s + r.usage.system_s;
    upload_rss_kb = std::max(upload_rss_kb, r.usage.max_rss_kb);
  }
  if (uploaded)
    line("uploads     %.2f ms CPU per thumbnail, peak RSS %.1f MB\n",
         t.thumbnails ? 1000.0 * upload_cpu_s / static_cast<double>(t.thumbnails) : 0.0, upload_rss_kb / 1024.0);
  out += format_process_table(rows);
  // What a user reads last: what went wrong, by kind, and where to look.
  if (t.failed)
    out += "failed: " + format_failure_tally(t.failed_by_code) + " (reasons above; --report has one line per source)\n";
  out += "thumbnails are in " + destination + "\n";
  return out;
}

std::string format_process_table(const std::vector<ProcessRow>& rows) {
  std::string out;
  char buf[256];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
  };
  line("\n");
  line("%-12s %8s %9s %9s %10s %7s  %s\n", "process", "pid", "user s", "sys s", "peak RSS", "jobs", "ended");
  auto row = [&](const ProcessRow& r) {
    line("%-12s %8d %9.2f %9.2f %7.1f MB %7" PRIu64 "  %s\n", r.role.c_str(), r.pid, r.usage.user_s,
         r.usage.system_s, r.usage.max_rss_kb / 1024.0, r.jobs, r.ended.c_str());
  };
  // After a crash storm, the processes that ended early are folded into one
  // row per role so the table stays readable; the rest get a row each.
  constexpr std::size_t kMaxEarlyRows = 8;
  auto ended_well = [](const ProcessRow& r) {
    return r.ended == "exit 0" || r.ended == "-" || r.ended.rfind("stopped", 0) == 0;
  };
  std::size_t early = 0;
  for (const ProcessRow& r : rows) early += !ended_well(r);
  if (early <= kMaxEarlyRows) {
    for (const ProcessRow& r : rows) row(r);
    return out;
  }
  std::vector<ProcessRow> folded;
  for (const ProcessRow& r : rows) {
    if (ended_well(r)) {
      row(r);
      continue;
    }
    auto it = std::find_if(folded.begin(), folded.end(), [&](const ProcessRow& f) { return f.role == r.role; });
    if (it == folded.end()) it = folded.insert(folded.end(), {r.role, 0, {}, 0, ""});
    it->usage.user_s += r.usage.user_s;
    it->usage.system_s += r.usage.system_s;
    it->usage.max_rss_kb = std::max(it->usage.max_rss_kb, r.usage.max_rss_kb);
    it->jobs += r.jobs;
    it->pid += 1;  // counts them
  }
  for (ProcessRow& f : folded) {
    line("%-12s %8s %9.2f %9.2f %7.1f MB %7" PRIu64 "  %d ended early (crashed or killed)\n", f.role.c_str(), "*",
         f.usage.user_s, f.usage.system_s, f.usage.max_rss_kb / 1024.0, f.jobs, f.pid);
  }
  return out;
}

}  // namespace thumbmill
