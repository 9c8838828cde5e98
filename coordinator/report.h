// What the run tells its user: the per-source report (JSON lines), the live
// progress line and the closing summary with one row per process.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "coordinator/crew.h"
#include "shared/checked_file.h"
#include "shared/options.h"
#include "shared/status.h"

namespace thumbmill {

struct OutputFile {
  std::string path;
  int width = 0;
  int height = 0;
  std::uint64_t bytes = 0;
};

/// How one source ended. Exactly one per source (duplicates excepted).
struct SourceResult {
  std::string url;            // the source as written in the list
  std::uint64_t line = 0;
  bool ok = false;
  bool skipped = false;       // its thumbnails were already complete (resume)
  Code code = Code::kOk;
  std::string error;          // empty when ok
  std::vector<OutputFile> outputs;
  std::uint64_t bytes_downloaded = 0;
  std::uint32_t attempts = 0;        // resize attempts (a crashed worker makes 2)
  std::uint32_t fetch_attempts = 0;  // transfers, retries included
  int http_status = 0;
  std::uint64_t ms = 0;              // from first handed out to done
  std::uint32_t fetch_ms = 0;        // download (from its first try to the body in the queue)
  std::uint32_t resize_ms = 0;       // decode, resize, encode and write
  // With an --out bucket (reported only then): the PUTs made for it,
  // retries and its manifest record included, the bytes stored, and the
  // time from the uploader taking it to its last PUT.
  bool uploaded = false;
  std::uint32_t upload_attempts = 0;
  std::uint64_t upload_bytes = 0;
  std::uint32_t upload_ms = 0;
};

/// One JSON object per line, each written to the file as its source ends,
/// so a report of an interrupted run is still complete up to where it
/// stopped. Every write is checked: the first failure (a full disk,
/// /dev/full) is kept, later lines are dropped, and status() and Close()
/// report it, so a run never ends as a success with a report that is not.
class ReportWriter {
 public:
  /// Creates or truncates the report. An empty path makes a writer that
  /// writes nothing. Call only once the run's start-up checks have passed
  /// (a run that cannot start leaves an earlier report alone), after
  /// check_report_path.
  static Result<ReportWriter> Open(const std::string& path);
  ReportWriter() = default;
  ReportWriter(ReportWriter&& other) noexcept = default;
  ReportWriter& operator=(ReportWriter&&) = delete;

  void Write(const SourceResult& result);
  /// Ok, or the first failure to write the report ("--report: cannot write
  /// ...: No space left on device").
  Status status() const;
  /// Closes the file; returns status() including the close itself.
  Status Close();
  /// The JSON line for one result (also used by tests).
  static std::string ToJson(const SourceResult& result);

 private:
  explicit ReportWriter(CheckedFile file) : file_(std::move(file)) {}
  CheckedFile file_;
};

/// Refuses (kInvalidArgument) a --report that is the same file as the list
/// (standard input's file when the list is "-") or the output directory, by
/// any name: the same path, a symlink, a hard link.
Status check_report_path(const Options& options);

struct RunTotals {
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::uint64_t skipped = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t thumbnails = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t worker_restarts = 0;
  std::uint64_t downloader_restarts = 0;
  std::uint64_t uploader_restarts = 0;
  std::uint64_t sources_read = 0;  // distinct sources seen so far
  bool list_done = false;          // sources_read is the final total
};

/// One row of the per-process table.
struct ProcessRow {
  std::string role;  // coordinator, downloader, worker
  std::int32_t pid = 0;
  ChildUsage usage;
  std::uint64_t jobs = 0;
  std::string ended;  // "exit 0", "signal 9 (Killed)", "running"
};

/// "  812 ok    3 failed / 1000  41.3 img/s  in 812.0 MB  out 9.1 MB  0:20"
std::string format_progress(const RunTotals& totals, double elapsed_s);

/// The closing summary: totals, rates and the table of processes.
std::string format_summary(const RunTotals& totals, double wall_s, const std::vector<ProcessRow>& rows);

/// "812.0 MB", "9.1 KB" (decimal units, as download tools print them).
std::string human_bytes(std::uint64_t bytes);

}  // namespace thumbmill
