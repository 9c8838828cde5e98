// CountedSemaphore: a process-shared wake-up that is posted only when a
// sleeper is counted, and slept on against CLOCK_MONOTONIC (after nginx's
// ngx_shmtx_wakeup).
//
// A plain semaphore posted on every event piles up one token per event that
// nobody waited for (10,000 publishes left 10,000 tokens, each a spurious
// wake-up later). Here a sleeper first counts itself (BeginWait), then looks
// at its condition once more, and only then sleeps (Wait); a waker posts
// only after taking one sleeper off the count (WakeOne). With sequentially
// consistent operations on both sides (the waker changes the condition, then
// reads the count; the sleeper raises the count, then reads the condition),
// at least one of them sees the other: no wake-up is lost.
//
// The sleep is sem_clockwait(CLOCK_MONOTONIC) on a raw sem_t (glibc 2.30+),
// so a wall-clock step (NTP, an administrator) neither cuts a wait short nor
// stretches it; Boost's interprocess_semaphore::timed_wait takes an absolute
// CLOCK_REALTIME time.
//
// Lives in shared memory: construct it once in place (the block's creator);
// other processes use it as mapped. Safe after a process was SIGKILLed in
// any call (a sem_t, unlike a shared condition variable, survives that; see
// ../shared/notes/processes-and-ipc.md): a killed sleeper leaves its count
// behind, which costs one token that wakes the next sleeper early, once.
#pragma once

#include <semaphore.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace thumbmill {

class CountedSemaphore {
 public:
  CountedSemaphore();  // sem_init, process-shared, count 0
  CountedSemaphore(const CountedSemaphore&) = delete;
  CountedSemaphore& operator=(const CountedSemaphore&) = delete;

  // ----- sleeper: BeginWait, look at the condition, then CancelWait or Wait.

  /// Counts the caller as a sleeper. REQUIRES: followed by CancelWait or Wait.
  void BeginWait();
  /// The condition held after BeginWait after all: uncounts the caller (or,
  /// when a waker had already taken it off the count, takes its token).
  void CancelWait();
  /// Sleeps until woken or `timeout` passes on CLOCK_MONOTONIC. True when
  /// woken. Either way the caller is no longer counted.
  bool Wait(std::chrono::milliseconds timeout);

  // ----- waker

  /// Posts once if a sleeper is counted (and uncounts it). Returns whether
  /// it posted.
  bool WakeOne();
  /// Wakes every counted sleeper. Returns how many posts that took.
  int WakeAll();

  // ----- for tests and statistics

  /// Tokens posted and not yet taken (sem_getvalue).
  int pending() const;
  /// Sleepers counted now.
  int waiters() const { return waiters_.load(std::memory_order_seq_cst); }

 private:
  /// Takes one sleeper off the count if there is one.
  bool Uncount();

  sem_t sem_;
  std::atomic<std::int32_t> waiters_{0};
  static_assert(std::atomic<std::int32_t>::is_always_lock_free);
};

}  // namespace thumbmill
