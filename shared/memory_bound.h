// The memory bound of a resize worker process: what the coordinator and the
// worker agree on without the worker's code (the coordinator names the limit
// when it reports a worker that ran out of memory).
//
// Two layers: the decode estimate (worker/decode_estimate.h) refuses an image
// whose header says it would need more than --max-decode-mb, and a hard limit
// on the worker's writable private memory (RLIMIT_DATA, worker/memory_limit.h)
// catches an estimate that is wrong. The limit leaves room above the estimate
// for what every worker holds anyway (libvips, its thread stacks and malloc
// arenas: about 20 MiB measured) and for the estimate's own error.
#pragma once

#include <cstdint>

namespace thumbmill {

/// Whether a worker can be held to RLIMIT_DATA in this build. Not under
/// AddressSanitizer: its terabytes of shadow memory count as data, so once
/// the limit is set every later mapping fails ("Failed to mmap"). The
/// sanitizer build runs workers with the estimate alone.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kWorkerDataLimitAvailable = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kWorkerDataLimitAvailable = false;
#else
inline constexpr bool kWorkerDataLimitAvailable = true;
#endif
#else
inline constexpr bool kWorkerDataLimitAvailable = true;
#endif

/// Exit status of a worker whose memory ran out (an allocation failed under
/// its hard limit). The coordinator treats it like a crash, requeues the job
/// once, and reports "worker out of memory" as too-much-memory.
inline constexpr int kWorkerOutOfMemoryExit = 79;

/// MiB every worker may use above --max-decode-mb's share: libvips itself,
/// the encoded thumbnails, and the error of the estimate.
inline constexpr std::uint64_t kWorkerBaseMib = 128;

/// The hard limit of one worker process in MiB: 1.5 x --max-decode-mb plus
/// kWorkerBaseMib (896 MiB for the default 512).
constexpr std::uint64_t worker_memory_limit_mib(int max_decode_mb) {
  const auto decode = static_cast<std::uint64_t>(max_decode_mb < 0 ? 0 : max_decode_mb);
  return decode + decode / 2 + kWorkerBaseMib;
}

}  // namespace thumbmill
