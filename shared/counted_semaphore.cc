#include "shared/counted_semaphore.h"

#include <time.h>

#include <algorithm>
#include <cerrno>

namespace thumbmill {

CountedSemaphore::CountedSemaphore() {
  // Fails only for a value over SEM_VALUE_MAX or without process-shared
  // semaphores, neither of which Linux has: nothing to report.
  ::sem_init(&sem_, /*pshared=*/1, 0);
}

bool CountedSemaphore::Uncount() {
  std::int32_t w = waiters_.load(std::memory_order_seq_cst);
  while (w > 0)
    if (waiters_.compare_exchange_weak(w, w - 1, std::memory_order_seq_cst)) return true;
  return false;
}

void CountedSemaphore::BeginWait() { waiters_.fetch_add(1, std::memory_order_seq_cst); }

void CountedSemaphore::CancelWait() {
  if (Uncount()) return;
  // A waker took a sleeper off the count meanwhile and posts for it: take
  // that token, so it wakes nobody for nothing. If the post has not landed
  // yet the token stays, and costs the next sleeper one early wake-up.
  ::sem_trywait(&sem_);
}

bool CountedSemaphore::Wait(std::chrono::milliseconds timeout) {
  timespec deadline;
  ::clock_gettime(CLOCK_MONOTONIC, &deadline);
  const auto ms = std::max<std::int64_t>(0, timeout.count());
  deadline.tv_sec += static_cast<time_t>(ms / 1000);
  deadline.tv_nsec += static_cast<long>(ms % 1000) * 1'000'000;
  if (deadline.tv_nsec >= 1'000'000'000) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1'000'000'000;
  }
  for (;;) {
    if (::sem_clockwait(&sem_, CLOCK_MONOTONIC, &deadline) == 0) return true;  // the waker uncounted us
    if (errno != EINTR) break;  // ETIMEDOUT
  }
  if (Uncount()) return false;
  // Timed out just as a waker took us off the count: its token is ours.
  return ::sem_trywait(&sem_) == 0;
}

bool CountedSemaphore::WakeOne() {
  if (!Uncount()) return false;
  ::sem_post(&sem_);  // fails only at SEM_VALUE_MAX tokens, which the count rules out
  return true;
}

int CountedSemaphore::WakeAll() {
  int posted = 0;
  while (WakeOne()) ++posted;
  return posted;
}

int CountedSemaphore::pending() const {
  int value = 0;
  ::sem_getvalue(const_cast<sem_t*>(&sem_), &value);
  return value;
}

}  // namespace thumbmill
