#include "worker/memory_limit.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include <glib.h>

#include "shared/memory_bound.h"

namespace thumbmill {
namespace {

std::atomic<bool> limited{false};

/// Writes `parts` to stderr with write(2) alone: no allocation.
void write_stderr(std::initializer_list<std::string_view> parts) {
  for (std::string_view part : parts) {
    while (!part.empty()) {
      const ssize_t n = ::write(STDERR_FILENO, part.data(), part.size());
      if (n <= 0) return;
      part.remove_prefix(static_cast<std::size_t>(n));
    }
  }
}

void on_new_failure() { exit_out_of_memory("out of memory: operator new failed"); }

/// GLib's fatal errors in its own domain; g_malloc's failure is "<file>:<line>:
/// failed to allocate N bytes". Anything else keeps GLib's default handling
/// (it aborts, and the coordinator sees a crash).
void on_glib_error(const gchar* domain, GLogLevelFlags level, const gchar* message, gpointer) {
  if (message && std::strstr(message, "failed to allocate")) {
    write_stderr({"thumbmill worker: out of memory: ", message, "\n"});
    exit_out_of_memory("out of memory");
  }
  g_log_default_handler(domain, level, message, nullptr);
}

}  // namespace

Status limit_worker_memory(std::uint64_t limit_bytes) {
  if (!kWorkerDataLimitAvailable) return Status::Ok();  // see shared/memory_bound.h
  rlimit current{};
  if (::getrlimit(RLIMIT_DATA, &current) != 0) return Status::FromErrno("getrlimit(RLIMIT_DATA)");
  rlimit wanted = current;
  const auto limit = static_cast<rlim_t>(limit_bytes);
  wanted.rlim_cur = std::min(current.rlim_cur, limit);  // RLIM_INFINITY is the largest value
  wanted.rlim_max = std::min(current.rlim_max, limit);
  wanted.rlim_cur = std::min(wanted.rlim_cur, wanted.rlim_max);
  if (::setrlimit(RLIMIT_DATA, &wanted) != 0) return Status::FromErrno("setrlimit(RLIMIT_DATA)");
  std::set_new_handler(on_new_failure);
  g_log_set_handler("GLib",
                    static_cast<GLogLevelFlags>(G_LOG_LEVEL_ERROR | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
                    on_glib_error, nullptr);
  limited = true;
  return Status::Ok();
}

bool worker_memory_limited() { return limited; }

void exit_out_of_memory(std::string_view what) {
  write_stderr({"thumbmill worker: ", what, "; this worker ends, its job is requeued once\n"});
  ::_exit(kWorkerOutOfMemoryExit);
}

}  // namespace thumbmill
