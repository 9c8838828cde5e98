// PidLock: a spin lock whose word holds the id of its owner, for memory
// shared between processes that may be killed at any instant (after nginx's
// ngx_shmtx).
//
// Why not a pthread mutex: Boost 1.74's interprocess_mutex is not robust (a
// process killed while holding it blocks every later lock() forever), and a
// shared condition variable can hang its notifier after a waiter is killed
// (see ../shared/notes/processes-and-ipc.md). Here a waiter that has spun for
// a while checks whether the owner still exists and takes the lock over if
// it does not; the supervisor also force-releases it when it reaps the owner.
//
// Contract for users: hold it for a handful of loads and stores only, never
// across a syscall that can block, and order the stores of each critical
// section so that stopping after any one of them leaves a valid state.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdint>

namespace thumbmill {

class PidLock {
 public:
  static_assert(std::atomic<std::int32_t>::is_always_lock_free);

  /// The id this thread locks with: its kernel thread id, which equals the
  /// process id for a single-threaded process and is unique across threads
  /// of the threaded build.
  static std::int32_t self() { return static_cast<std::int32_t>(::gettid()); }

  void lock() {
    const std::int32_t me = self();
    for (unsigned spins = 0;; ++spins) {
      std::int32_t expected = 0;
      if (owner_.compare_exchange_weak(expected, me, std::memory_order_acquire)) return;
      if (spins < 64) continue;
      if (spins < 128) {
        ::sched_yield();
        continue;
      }
      // Every ~256 tries (~13 ms of 50 us naps) look for a dead owner.
      if ((spins & 255) == 0 && expected != 0 && !alive(expected)) {
        if (owner_.compare_exchange_strong(expected, me, std::memory_order_acquire)) return;
      }
      const timespec nap{0, 50'000};
      ::nanosleep(&nap, nullptr);
    }
  }

  void unlock() { owner_.store(0, std::memory_order_release); }

  /// Releases the lock if `dead` holds it. For the supervisor, which knows
  /// `dead` has exited because it reaped it. Returns whether it was held.
  bool release_if_held_by(std::int32_t dead) {
    return owner_.compare_exchange_strong(dead, 0, std::memory_order_acq_rel);
  }

  std::int32_t owner() const { return owner_.load(std::memory_order_relaxed); }

 private:
  /// Whether `id` can still release the lock. A zombie cannot: it is dead,
  /// only not yet reaped, and its reaper is the coordinator, which may be
  /// the very one spinning here (it reaps between loop turns).
  static bool alive(std::int32_t id) {
    if (::kill(id, 0) != 0 && errno == ESRCH) return false;
    char path[48];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(id));
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno != ENOENT;  // gone between the two looks; else assume alive
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return true;
    buf[n] = '\0';
    // "pid (comm) S ...": the state follows the last ')' (comm may hold one).
    const char* close_paren = std::strrchr(buf, ')');
    if (!close_paren || close_paren[1] != ' ') return true;
    return close_paren[2] != 'Z' && close_paren[2] != 'X';
  }

  std::atomic<std::int32_t> owner_{0};
};

}  // namespace thumbmill
