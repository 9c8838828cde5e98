// The ranges of the integer options, internal to shared/: one table
// (kIntLimits) read by both the command-line validators (command_line.cc) and
// finalize_options (options.cc), so a value from JSON or built by hand is
// held to the same rules as one typed by a user. Also the few helpers the
// three option files share for their error messages.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "shared/options.h"
#include "shared/status.h"

namespace thumbmill {

/// kInvalidArgument with `message`.
Status invalid_option(std::string message);

/// The error for more than kMaxSizes different sizes.
Status too_many_sizes(std::size_t count);

/// The error for more than kMaxOutputsPerSource sizes x formats.
Status too_many_outputs(std::size_t sizes, std::size_t formats);

/// `text` in single quotes, for messages.
std::string quoted(std::string_view text);

/// One integer option: its flag, its field in Options, and its inclusive range.
struct IntLimit {
  std::string_view flag;
  int Options::*field;
  int min;
  int max;
};

inline constexpr IntLimit kQuality{"--quality", &Options::quality, 1, 100};
inline constexpr IntLimit kWorkers{"--workers", &Options::workers, 0, 4096};
inline constexpr IntLimit kDownloads{"--downloads", &Options::downloads, 1, 1024};
inline constexpr IntLimit kQueueMb{"--queue-mb", &Options::queue_mb, 8, 65536};
inline constexpr IntLimit kConnectTimeout{"--connect-timeout", &Options::connect_timeout_s, 1, 3600};
inline constexpr IntLimit kTransferTimeout{"--timeout", &Options::transfer_timeout_s, 1, 86400};
inline constexpr IntLimit kStallTimeout{"--stall-timeout", &Options::stall_timeout_s, 1, 3600};
inline constexpr IntLimit kMaxRedirects{"--max-redirects", &Options::max_redirects, 0, 100};
inline constexpr IntLimit kFetchAttempts{"--fetch-attempts", &Options::fetch_attempts, 1, 100};
inline constexpr IntLimit kJobTimeout{"--job-timeout", &Options::job_timeout_s, 1, 86400};
inline constexpr IntLimit kUploads{"--uploads", &Options::uploads, 1, 1024};
inline constexpr IntLimit kUploadQueueMb{"--upload-queue-mb", &Options::upload_queue_mb, 8, 65536};
inline constexpr IntLimit kUploadAttempts{"--upload-attempts", &Options::upload_attempts, 1, 100};
inline constexpr IntLimit kClaimIdle{"--claim-idle", &Options::claim_idle_s, 1, 86400};
inline constexpr IntLimit kMaxDeliveries{"--max-deliveries", &Options::max_deliveries, 1, 1000};
inline constexpr IntLimit kMaxDecodeMb{"--max-decode-mb", &Options::max_decode_mb, 16, 1 << 20};

// Not in kIntLimits: its default, kDefaultEffort, is outside the range a user
// may type, and the range depends on the format (check_effort, options.cc).
inline constexpr IntLimit kEffort{"--effort", &Options::effort, 0, kMaxAvifEffort};

inline constexpr IntLimit kIntLimits[] = {
    kQuality,      kWorkers,       kDownloads,     kQueueMb,       kConnectTimeout,
    kTransferTimeout, kStallTimeout, kMaxRedirects, kFetchAttempts, kJobTimeout,
    kMaxDecodeMb,  kUploads,       kUploadQueueMb, kUploadAttempts, kClaimIdle, kMaxDeliveries,
};

/// "min-max", for help text and messages.
std::string range_text(const IntLimit& limit);

/// All of `text` as a base-10 integer within `limit`; kInvalidArgument
/// naming the range otherwise.
Result<int> parse_int_in(std::string_view text, const IntLimit& limit);

/// Whether `format` is one of the Format values (a hand-built or cast one
/// may not be).
bool known_format(Format format);

}  // namespace thumbmill
