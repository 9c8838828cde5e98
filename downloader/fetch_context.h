// Fetch context: what the parts of one Fetcher share (the queue its bodies
// go into, the run's options, where spills go, whose slots they are) and the
// one clock they all read. Internal to the downloader; see fetcher.h for the
// public face.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill::fetch {

/// What a Fetcher's parts share. Outlives every Body and Transfer made
/// with it (the Fetcher owns it).
struct Context {
  JobQueue& queue;
  const Options& options;
  std::string temp_dir;  // "" : no spilling (a body that does not fit fails)
  std::int32_t owner;    // recorded in the queue slots we fill
};

/// Milliseconds on the monotonic clock: every pause, retry and fetch time
/// is measured with it.
inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace thumbmill::fetch
