// What the run tells its user: the per-source report (JSON lines), the live
// progress line and the closing summary with one row per process.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/crew.h"
#include "shared/checked_file.h"
#include "shared/options.h"
#include "shared/source_list.h"
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
  // Not in the report: the source's SourceLine::ticket, for its feed.
  std::string ticket;
};

/// The result of a source that ends failed without being worked on (a
/// malformed or refused line, a batch's poison job): its name, line number
/// and ticket from `line`.
SourceResult failed_result(const SourceLine& line, Code code, std::string error);

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
  std::uint64_t failed = 0;       // ended in error, interrupted ones not included
  std::uint64_t interrupted = 0;  // handed out, then the run stopped (Ctrl-C, fatal)
  std::map<std::string, std::uint64_t> failed_by_code;  // error_code -> count, for `failed`
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
  // A stopped run: list lines never read (counted without processing them),
  // or nullopt when the rest of the list was left unread and uncounted.
  // Meaningful only when stopped_early.
  bool stopped_early = false;
  std::optional<std::uint64_t> not_started;

  /// Sources with an outcome (ok, skipped, failed, interrupted).
  std::uint64_t done() const { return ok + skipped + failed + interrupted; }
};

/// One row of the per-process table.
struct ProcessRow {
  std::string role;  // coordinator, downloader, worker
  std::int32_t pid = 0;
  ChildUsage usage;
  std::uint64_t jobs = 0;
  std::string ended;  // "exit 0", "signal 9 (Killed)", "stopped (...)", "-"
};

/// The live progress line, in words. Once the list has been read to its end:
///   "165 of 340 done (160 ok, 5 failed), 12.3 img/s, 45%, ETA 0:14"
/// before that (no total yet, so no percentage or ETA):
///   "165 done (160 ok, 5 failed), 12.3 img/s, list still being read"
/// Skipped and interrupted counts appear in the parentheses when not zero.
std::string format_progress(const RunTotals& totals, double elapsed_s);

/// The closing summary: totals, rates, the table of processes, and last the
/// tally of failures by error_code and where the thumbnails went
/// (`destination`: the --out directory or s3:// prefix).
std::string format_summary(const RunTotals& totals, double wall_s, const std::vector<ProcessRow>& rows,
                           const std::string& destination);

/// The table of processes, one row each (those that ended early folded by
/// role after a crash storm), after a blank line.
std::string format_process_table(const std::vector<ProcessRow>& rows);

/// "3 http-status, 1 not-an-image": the most frequent first, ties by name.
std::string format_failure_tally(const std::map<std::string, std::uint64_t>& by_code);

/// The line printed as a source fails, without its newline:
///   "thumbmill: failed: <source>: <reason> [error_code]"
/// and, for -v, as one ends well:
///   "thumbmill: ok: <source>: 3 thumbnails: out/a_100.webp out/a_200.webp ..."
///   "thumbmill: skipped (already done): <source>"
std::string format_source_line(const SourceResult& result);

/// "812.0 MB", "9.1 KB" (decimal units, as download tools print them).
std::string human_bytes(std::uint64_t bytes);

}  // namespace thumbmill
