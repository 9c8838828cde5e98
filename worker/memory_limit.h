// The hard memory limit of a worker process: the layer that holds when the
// decode estimate (worker/decode_estimate.h) is wrong.
//
// RLIMIT_DATA, not RLIMIT_AS. Since Linux 4.7 RLIMIT_DATA counts private
// writable mappings: the heap, malloc's mmaps and arenas as they are made
// writable, thread stacks; that is, the memory a decoder can fill. It leaves
// out what a worker maps without owning: the shared-memory arena
// (--queue-mb, MAP_SHARED, mapped whole into every worker), the libraries'
// code (libvips pulls in ~100 MB of them), and glibc's 64 MiB per-thread
// malloc arena reservations (PROT_NONE until used). Under RLIMIT_AS every
// one of those would have to be allowed for, and the limit would bound the
// arena's size more than the decoder. A cgroup would also catch page-cache
// and kernel memory, but needs delegation a plain user rarely has.
//
// An allocation that fails under the limit ends the process with
// kWorkerOutOfMemoryExit (shared/memory_bound.h), whichever way it fails:
// operator new (a new_handler), GLib's g_malloc (its fatal "failed to
// allocate" error, which would otherwise abort), or a decoder that reports
// it as an error (the worker loop checks is_out_of_memory). The coordinator
// sees that exit, requeues the job once like any crash, and reports it as
// "worker out of memory". Process build only: threads share one limit.
#pragma once

#include <cstdint>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

/// Sets RLIMIT_DATA to `limit_bytes` (kept lower if the soft or hard limit
/// in place already is) and installs the allocation-failure exits. Call
/// before libvips starts, once. Fails only if setrlimit does. Does nothing
/// where kWorkerDataLimitAvailable is false (AddressSanitizer builds).
Status limit_worker_memory(std::uint64_t limit_bytes);

/// Whether limit_worker_memory has run in this process: then an allocation
/// failure ends it (exit_out_of_memory) instead of being reported.
bool worker_memory_limited();

/// Prints "thumbmill worker: <what>; ..." and ends the process
/// with kWorkerOutOfMemoryExit, without running destructors or atexit
/// handlers (they may allocate).
[[noreturn]] void exit_out_of_memory(std::string_view what);

}  // namespace thumbmill
