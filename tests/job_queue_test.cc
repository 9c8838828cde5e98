// The job queue, in both placements: FIFO order, back-pressure, the arena
// going round, growth, and producers and consumers that are real processes,
// some of them killed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "shared/job_queue.h"
#include "shared/shm_segment.h"

using namespace thumbmill;
using namespace std::chrono_literals;

namespace {

JobInfo info(std::uint64_t id) { return JobInfo{id, "stem", "", false}; }

/// Publishes job `id` with a body of `size` bytes of value (id & 0xff).
JobQueue::SlotId produce(JobQueue& q, std::uint64_t id, std::uint64_t size) {
  auto slot = q.Reserve(info(id), size, 1);
  REQUIRE(slot);
  auto body = q.body(*slot);
  std::memset(body.data(), static_cast<int>(id & 0xff), size);
  q.Publish(*slot, size, 0);
  return *slot;
}

/// Waits until `condition` holds, up to `limit`. For conditions another
/// thread or process brings about (a sleeper being counted), not for time.
template <class Condition>
bool wait_until(Condition condition, std::chrono::milliseconds limit = 30'000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

std::uint64_t take_id(JobQueue& q, JobQueue::SlotId* slot) {
  REQUIRE(q.Take(2, 0ms, slot) == TakeResult::kJob);
  return q.slot(*slot).source_id;
}

}  // namespace

TEST_CASE("jobs come out in the order they were published") {
  HeapQueueMemory mem(8, 1 << 20);
  JobQueue& q = mem.queue();
  for (std::uint64_t id = 1; id <= 5; ++id) produce(q, id, 1000);
  for (std::uint64_t id = 1; id <= 5; ++id) {
    JobQueue::SlotId slot;
    CHECK(take_id(q, &slot) == id);
    CHECK(q.slot(slot).attempt == 1);
    q.Release(slot);
  }
  JobQueue::SlotId slot;
  CHECK(q.Take(2, 10ms, &slot) == TakeResult::kTimeout);
}

TEST_CASE("a body is read back exactly as written") {
  HeapQueueMemory mem(4, 1 << 20);
  JobQueue& q = mem.queue();
  produce(q, 7, 12345);
  JobQueue::SlotId slot;
  take_id(q, &slot);
  auto body = q.body(slot);
  REQUIRE(body.size() == 12345);
  CHECK(std::all_of(body.begin(), body.end(), [](std::byte b) { return b == std::byte{7}; }));
}

TEST_CASE("back-pressure: no slot or no arena room means Reserve fails until space is freed") {
  HeapQueueMemory mem(3, 64 * 1024);
  JobQueue& q = mem.queue();
  SUBCASE("slots run out") {
    for (int i = 0; i < 3; ++i) produce(q, i, 64);
    CHECK_FALSE(q.Reserve(info(9), 64, 1));
    JobQueue::SlotId slot;
    take_id(q, &slot);
    CHECK_FALSE(q.Reserve(info(9), 64, 1));  // taken is still held
    q.Release(slot);
    CHECK(q.Reserve(info(9), 64, 1));
  }
  SUBCASE("arena runs out") {
    produce(q, 1, 40 * 1024);
    CHECK_FALSE(q.Reserve(info(2), 40 * 1024, 1));
    CHECK(q.Reserve(info(3), 20 * 1024, 1));
  }
  SUBCASE("a body larger than the whole arena never fits") {
    CHECK_FALSE(q.Reserve(info(1), 65 * 1024, 1));
  }
  SUBCASE("path jobs need no arena") {
    produce(q, 1, 64 * 1024);
    CHECK(q.Reserve(JobInfo{2, "s", "/tmp/x.jpg", false}, 0, 1));
  }
}

TEST_CASE("the arena goes round: extents wrap to the start once the end is reached") {
  HeapQueueMemory mem(4, 100 * 1024);
  JobQueue& q = mem.queue();
  std::set<std::uint64_t> offsets;
  for (std::uint64_t id = 0; id < 40; ++id) {
    auto slot = produce(q, id, 30 * 1024);
    offsets.insert(q.slot(slot).offset);
    JobQueue::SlotId taken;
    CHECK(take_id(q, &taken) == id);
    auto body = q.body(taken);
    CHECK(std::all_of(body.begin(), body.end(),
                      [&](std::byte b) { return b == std::byte(static_cast<unsigned char>(id)); }));
    q.Release(taken);
  }
  // 30 KiB extents in a 100 KiB arena: positions 0, 30, 60 KiB and round again.
  CHECK(offsets.size() == 3);
  CHECK(*offsets.begin() == 0);
}

TEST_CASE("release out of order leaves a gap that is reused") {
  HeapQueueMemory mem(8, 100 * 1024);
  JobQueue& q = mem.queue();
  for (int id = 0; id < 3; ++id) produce(q, id, 30 * 1024);
  JobQueue::SlotId a, b, c;
  take_id(q, &a);
  take_id(q, &b);
  take_id(q, &c);
  q.Release(b);  // the middle one
  auto slot = q.Reserve(info(9), 30 * 1024, 1);
  REQUIRE(slot);
  CHECK(q.slot(*slot).offset == q.slot(b).offset);
}

TEST_CASE("an extent whose pages cannot be reserved is not handed out") {
  HeapQueueMemory mem(4, 256 * 1024);
  JobQueue& q = mem.queue();
  std::uint64_t allowed = 0;  // bytes the reserver agrees to, in all
  std::vector<std::pair<std::uint64_t, std::uint64_t>> asked;
  q.set_page_reserver([&](std::uint64_t offset, std::uint64_t length) {
    asked.push_back({offset, length});
    if (length > allowed) return false;
    allowed -= length;
    return true;
  });
  CHECK_FALSE(q.Reserve(info(1), 1024, 1));  // refused: nothing claimed
  CHECK(q.Stats().free == 4);
  allowed = 1024;
  auto slot = q.Reserve(info(2), 1024, 1);
  REQUIRE(slot);
  CHECK(asked.back().second == 1024);
  CHECK_FALSE(q.Grow(*slot, 4096));  // the new pages are refused too
  CHECK(q.slot(*slot).capacity == 1024);
  CHECK(q.slot(*slot).move_capacity == 0);
  allowed = 1 << 20;
  CHECK(q.Grow(*slot, 4096));
  CHECK(asked.back().second == 3072);  // grown in place: only the new tail
}

TEST_CASE("Grow keeps the bytes, in place or by moving") {
  HeapQueueMemory mem(4, 256 * 1024);
  JobQueue& q = mem.queue();
  auto slot = q.Reserve(info(1), 1024, 1);
  REQUIRE(slot);
  std::memset(q.body(*slot).data(), 0x5a, 1024);
  SUBCASE("in place") {
    REQUIRE(q.Grow(*slot, 8192));
    CHECK(q.slot(*slot).capacity == 8192);
  }
  SUBCASE("moved past a neighbour") {
    auto neighbour = q.Reserve(info(2), 1024, 1);
    REQUIRE(neighbour);
    const auto before = q.slot(*slot).offset;
    REQUIRE(q.Grow(*slot, 64 * 1024));
    CHECK(q.slot(*slot).offset != before);
  }
  auto body = q.body(*slot);
  CHECK(std::all_of(body.begin(), body.begin() + 1024, [](std::byte b) { return b == std::byte{0x5a}; }));
  CHECK_FALSE(q.Grow(*slot, 512 * 1024));  // larger than the arena
  CHECK(q.slot(*slot).move_capacity == 0);  // the old extent was given back
}

TEST_CASE("Close wakes idle consumers and lets ready jobs drain first") {
  HeapQueueMemory mem(4, 64 * 1024);
  JobQueue& q = mem.queue();
  produce(q, 1, 10);
  q.Close();
  JobQueue::SlotId slot;
  CHECK(q.Take(2, 1000ms, &slot) == TakeResult::kJob);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(q.Take(2, 5000ms, &slot) == TakeResult::kClosed);
  CHECK(std::chrono::steady_clock::now() - t0 < 4000ms);  // returned, not timed out
}

TEST_CASE("a blocked consumer wakes when a job is published from another thread") {
  HeapQueueMemory mem(4, 64 * 1024);
  JobQueue& q = mem.queue();
  std::thread producer([&] {
    // Publish only once the consumer is counted asleep, so it must be woken.
    REQUIRE(wait_until([&] { return q.wakeups().items_waiters == 1; }));
    produce(q, 42, 100);
  });
  JobQueue::SlotId slot;
  const TakeResult r = q.Take(2, 60'000ms, &slot);
  producer.join();
  REQUIRE(r == TakeResult::kJob);
  CHECK(q.slot(slot).source_id == 42);
}

TEST_CASE("ReclaimDead frees what a dead producer was filling and returns what a consumer held") {
  HeapQueueMemory mem(4, 64 * 1024);
  JobQueue& q = mem.queue();
  auto filling = q.Reserve(info(1), 1000, /*owner=*/111);
  REQUIRE(filling);
  produce(q, 2, 1000);
  JobQueue::SlotId taken;
  REQUIRE(q.Take(/*owner=*/222, 0ms, &taken) == TakeResult::kJob);

  CHECK(q.ReclaimDead(111).empty());
  CHECK(q.slot(*filling).current() == SlotState::kFree);

  auto held = q.ReclaimDead(222);
  REQUIRE(held.size() == 1);
  CHECK(held[0].source_id == 2);
  CHECK(held[0].attempt == 1);
  q.Requeue(held[0].slot);
  JobQueue::SlotId again;
  REQUIRE(q.Take(333, 0ms, &again) == TakeResult::kJob);
  CHECK(q.slot(again).source_id == 2);
  CHECK(q.slot(again).attempt == 2);  // the body stayed; only the attempt count moved
}

// ----- real processes -------------------------------------------------------

namespace {

struct ForkedQueue {
  std::unique_ptr<SharedSegment> segment;
  JobQueue queue;
};

ForkedQueue make_shared_queue(std::uint32_t slots, std::uint64_t arena) {
  auto seg = SharedSegment::Create(JobQueue::RequiredBytes(slots, arena));
  REQUIRE(seg.ok());
  JobQueue q = JobQueue::Create((*seg)->data(), (*seg)->size(), slots, arena, Placement::kShared);
  return {std::move(seg.value()), q};
}

/// Whether this process has the page holding `addr` mapped (a present page
/// table entry, bit 63 of its /proc/self/pagemap entry).
bool page_mapped(const void* addr) {
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::uint64_t entry = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(addr) / page * sizeof entry);
  const ssize_t n = ::pread(fd, &entry, sizeof entry, at);
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(sizeof entry));
  return (entry >> 63) & 1;
}

// In the shared placement a process done with a body drops its own pages of
// it (the data stays in the segment for whoever maps it next); that is where
// release really gives pages back, so that is where it is tested.
TEST_CASE("releasing a body drops this process's pages of it and leaves a neighbour's bytes alone") {
  auto [segment, q] = make_shared_queue(4, 1 << 20);
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  // Sizes that are not page multiples, so the two bodies share a page.
  produce(q, 1, 3 * page + 100);
  produce(q, 2, 10'000);
  JobQueue::SlotId first, second;
  take_id(q, &first);
  take_id(q, &second);
  const auto body = q.body(first);
  // A page wholly inside the first body, mapped again by reading it.
  const auto begin = reinterpret_cast<std::uintptr_t>(body.data());
  const auto* inner = reinterpret_cast<const volatile std::byte*>((begin + page - 1) / page * page);
  CHECK(*inner == std::byte{1});
  REQUIRE(page_mapped(const_cast<const std::byte*>(inner)));
  q.Release(first);
  CHECK_FALSE(page_mapped(const_cast<const std::byte*>(inner)));
  auto neighbour = q.body(second);
  CHECK(std::all_of(neighbour.begin(), neighbour.end(), [](std::byte b) { return b == std::byte{2}; }));
}

TEST_CASE("a producer backed by the segment fills bodies through its file: it maps none of their pages") {
  auto [segment, q] = make_shared_queue(4, 1 << 20);
  segment->BackProducer(q, 0, SharedSegment::Fills::kThroughFile);
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t size = 16 * page + 123;
  auto slot = q.Reserve(info(7), size, 1);
  REQUIRE(slot);
  std::vector<std::byte> bytes(size);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(i * 7 + 1);
  // In two pieces, the second at an offset, as a download arrives.
  REQUIRE(q.Fill(*slot, 0, std::span(bytes).first(5000)).ok());
  REQUIRE(q.Fill(*slot, 5000, std::span(bytes).subspan(5000)).ok());
  // Every page wholly inside the extent (an edge page may hold the queue's
  // own records, which this process does map).
  const auto begin = reinterpret_cast<std::uintptr_t>(q.body(*slot).data());
  for (std::uintptr_t at = (begin + page - 1) / page * page; at + page <= begin + size; at += page)
    CHECK_FALSE(page_mapped(reinterpret_cast<const void*>(at)));
  // Grown where it cannot stay (a neighbour right after it): moved through
  // the file too, and the old extent's pages, read for the move, dropped.
  auto neighbour = q.Reserve(info(8), page, 1);
  REQUIRE(neighbour);
  const auto old_begin = begin;
  REQUIRE(q.Grow(*slot, 3 * size));
  const auto moved = reinterpret_cast<std::uintptr_t>(q.body(*slot).data());
  REQUIRE(moved != old_begin);
  for (std::uintptr_t base : {old_begin, moved})
    for (std::uintptr_t at = (base + page - 1) / page * page; at + page <= base + size; at += page) {
      CAPTURE(base == moved);
      CAPTURE((at - base) / page);
      CHECK_FALSE(page_mapped(reinterpret_cast<const void*>(at)));
    }
  q.Abandon(*neighbour);
  q.Publish(*slot, size, 0);
  // A consumer (here the same process, through its mapping) reads it whole.
  JobQueue::SlotId taken;
  REQUIRE(take_id(q, &taken) == 7);
  const auto body = q.body(taken);
  REQUIRE(body.size() == size);
  CHECK(std::equal(body.begin(), body.end(), bytes.begin()));
}

/// Runs `body` in a forked child that exits 0 if it returns true.
template <class F>
pid_t fork_child(F body) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(body() ? 0 : 1);
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("several producer and consumer processes: every job is consumed exactly once, intact") {
  auto [segment, q] = make_shared_queue(16, 256 * 1024);
  constexpr int kProducers = 3, kConsumers = 3, kPerProducer = 400;
  // Consumers report each id they saw in a shared table of counters.
  auto* seen = static_cast<std::atomic<int>*>(::mmap(nullptr, sizeof(std::atomic<int>) * kProducers * kPerProducer,
                                                     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(seen != MAP_FAILED);
  std::vector<pid_t> producers, consumers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(fork_child([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const std::uint64_t id = p * kPerProducer + i;
        const std::uint64_t size = 1000 + (id * 7919) % 30000;  // varied sizes force wrap-around
        std::optional<JobQueue::SlotId> slot;
        while (!(slot = q.Reserve(info(id), size, getpid()))) q.WaitForSpace(20ms);
        auto body = q.body(*slot);
        for (std::uint64_t b = 0; b < size; ++b) body[b] = std::byte((id + b) & 0xff);
        q.Publish(*slot, size, 0);
      }
      return true;
    }));
  }
  for (int c = 0; c < kConsumers; ++c) {
    consumers.push_back(fork_child([&] {
      for (;;) {
        JobQueue::SlotId slot;
        const TakeResult r = q.Take(getpid(), 200ms, &slot);
        if (r == TakeResult::kClosed) return true;
        if (r == TakeResult::kTimeout) continue;
        const std::uint64_t id = q.slot(slot).source_id;
        auto body = q.body(slot);
        for (std::uint64_t b = 0; b < body.size(); ++b)
          if (body[b] != std::byte((id + b) & 0xff)) return false;
        seen[id].fetch_add(1);
        q.Release(slot);
      }
    }));
  }
  for (pid_t p : producers) CHECK(wait_exit(p) == 0);
  q.Close();
  for (pid_t c : consumers) CHECK(wait_exit(c) == 0);
  int once = 0;
  for (int i = 0; i < kProducers * kPerProducer; ++i) once += seen[i].load() == 1;
  CHECK(once == kProducers * kPerProducer);
  CHECK(q.Stats().free == q.slot_count());
  ::munmap(seen, sizeof(std::atomic<int>) * kProducers * kPerProducer);
}

TEST_CASE("a consumer killed while waiting does not stall the others") {
  auto [segment, q] = make_shared_queue(8, 64 * 1024);
  std::vector<pid_t> idle;
  for (int i = 0; i < 4; ++i)
    idle.push_back(fork_child([&] {
      JobQueue::SlotId slot;
      for (;;) q.Take(getpid(), 10'000ms, &slot);
      return true;
    }));
  REQUIRE(wait_until([&] { return q.wakeups().items_waiters == 4; }));  // all four asleep in Take
  for (pid_t p : idle) {
    ::kill(p, SIGKILL);
    wait_exit(p);
    q.ReclaimDead(p);
  }
  const pid_t consumer = fork_child([&] {
    JobQueue::SlotId slot;
    for (int i = 0; i < 50; ++i)
      if (q.Take(getpid(), 200ms, &slot) == TakeResult::kJob) return q.slot(slot).source_id == 5;
    return false;
  });
  produce(q, 5, 100);
  CHECK(wait_exit(consumer) == 0);
}

TEST_CASE("a producer killed while filling: its slot and arena space come back") {
  auto [segment, q] = make_shared_queue(4, 64 * 1024);
  const pid_t producer = fork_child([&] {
    auto slot = q.Reserve(info(1), 10'000, getpid());
    (void)slot;
    ::raise(SIGKILL);
    return true;
  });
  CHECK(wait_exit(producer) == 128 + SIGKILL);
  CHECK(q.Stats().filling == 1);
  CHECK(q.ReclaimDead(producer).empty());
  CHECK(q.Stats().filling == 0);
  CHECK(q.Stats().arena_used == 0);
}

TEST_CASE("PidLock: a holder killed and not yet reaped (a zombie) is dead: its parent takes the lock over") {
  // The coordinator is the parent of every lock holder and reaps them only
  // between loop turns: spinning on a zombie's lock, it would never reap it.
  auto* lock = static_cast<PidLock*>(
      ::mmap(nullptr, sizeof(PidLock), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(lock != MAP_FAILED);
  new (lock) PidLock();
  const pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    lock->lock();
    ::raise(SIGKILL);  // dies holding it
    ::_exit(1);
  }
  // Dead and unreaped, a zombie: wait for that without reaping it.
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, holder, &info, WEXITED | WNOWAIT) == 0);
  CHECK(lock->owner() == holder);
  std::atomic<bool> taken{false};
  std::thread taker([&] {
    lock->lock();  // spun for ever on the zombie before
    taken = true;
    lock->unlock();
  });
  // An event with a deadline: the taker either gets the lock or never does.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!taken && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool done = taken;
  if (!done) lock->release_if_held_by(holder);  // let the thread end either way
  taker.join();
  CHECK(done);
  ::waitpid(holder, nullptr, 0);
  ::munmap(lock, sizeof(PidLock));
}

TEST_CASE("PidLock: a lock whose holder was killed is taken over") {
  auto* lock = static_cast<PidLock*>(
      ::mmap(nullptr, sizeof(PidLock), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(lock != MAP_FAILED);
  new (lock) PidLock();
  const pid_t holder = fork_child([&] {
    lock->lock();
    ::raise(SIGKILL);  // dies holding it
    return true;
  });
  CHECK(wait_exit(holder) == 128 + SIGKILL);
  CHECK(lock->owner() == holder);
  lock->lock();  // would spin forever without the takeover
  CHECK(lock->owner() == PidLock::self());
  lock->unlock();
  SUBCASE("or released by the supervisor that reaped the holder") {
    const pid_t again = fork_child([&] {
      lock->lock();
      ::raise(SIGKILL);
      return true;
    });
    wait_exit(again);
    CHECK(lock->release_if_held_by(again));
    CHECK(lock->owner() == 0);
  }
  ::munmap(lock, sizeof(PidLock));
}
