#include "shared/job_queue.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <type_traits>

#include "shared/fixed_text.h"

namespace thumbmill {
namespace {

constexpr std::uint64_t kMagic = 0x746d696c6c517565;  // "tmillQue"
constexpr std::uint32_t kVersion = 3;  // 2: QueueStamp, counted semaphores; 3: JobSlot::source
constexpr std::uint64_t kAlign = 64;

constexpr std::uint64_t align_up(std::uint64_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

}  // namespace

struct JobQueue::Header {
  QueueStamp stamp;  // first: read before anything else (see Attach)
  std::uint32_t slot_count = 0;
  std::uint64_t arena_size = 0;
  std::uint64_t total_size = 0;
  PidLock lock;
  // Posted when a job is made ready, and by Close, for a consumer counted
  // waiting in Take. A consumer killed after taking a token loses it;
  // consumers therefore wait with a timeout and scan anyway.
  CountedSemaphore items;
  // Posted when a slot or arena space is freed, for a producer counted
  // waiting in WaitForSpace.
  CountedSemaphore space;
  std::uint64_t next_seq = 1;
  std::uint64_t cursor = 0;  // where the last extent ended: allocation goes round the arena
  std::atomic<std::uint32_t> closed{0};
  Placement placement = Placement::kPrivate;
  // Counts every time a slot or arena space was given back, so a producer
  // whose Reserve failed need not scan again until something was.
  std::atomic<std::uint64_t> frees{0};
};

std::int64_t monotonic_ms() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

std::size_t JobQueue::RequiredBytes(std::uint32_t slots, std::uint64_t arena_bytes) {
  return align_up(sizeof(Header)) + align_up(sizeof(JobSlot) * slots) + align_up(arena_bytes);
}

JobQueue JobQueue::Create(void* memory, std::size_t size, std::uint32_t slots,
                          std::uint64_t arena_bytes, Placement placement) {
  if (size < RequiredBytes(slots, arena_bytes)) {
    std::fprintf(stderr, "thumbmill: queue memory too small (internal error)\n");
    std::abort();
  }
  auto* base = static_cast<std::byte*>(memory);
  auto* header = new (base) Header();
  auto* slot_array = reinterpret_cast<JobSlot*>(base + align_up(sizeof(Header)));
  for (std::uint32_t i = 0; i < slots; ++i) new (&slot_array[i]) JobSlot();
  header->slot_count = slots;
  header->arena_size = align_up(arena_bytes);
  header->total_size = size;
  header->placement = placement;
  header->stamp.version = kVersion;
  header->stamp.header_bytes = sizeof(Header);
  header->stamp.slot_bytes = sizeof(JobSlot);
  std::atomic_thread_fence(std::memory_order_release);
  header->stamp.magic = kMagic;  // last: a reader that sees it sees the rest
  return JobQueue(header, slot_array,
                  base + align_up(sizeof(Header)) + align_up(sizeof(JobSlot) * slots));
}

Result<JobQueue> JobQueue::Attach(void* memory, std::size_t size) {
  auto* base = static_cast<std::byte*>(memory);
  if (size < sizeof(QueueStamp)) return Status(Code::kInternal, "queue segment too small");
  // The stamp sits at the same offsets in every build, so it is read as
  // itself before the rest of the header is trusted.
  static_assert(std::is_standard_layout_v<Header> && offsetof(Header, stamp) == 0);
  const auto* stamp = reinterpret_cast<const QueueStamp*>(base);
  if (stamp->magic != kMagic || stamp->version != kVersion)
    return Status(Code::kInternal, "queue segment holds no thumbmill queue (bad magic or version)");
  if (stamp->header_bytes != sizeof(Header) || stamp->slot_bytes != sizeof(JobSlot))
    return Status(Code::kInternal,
                  "queue segment has another layout (header " + std::to_string(stamp->header_bytes) +
                      " bytes, slot " + std::to_string(stamp->slot_bytes) + "; this build: " +
                      std::to_string(sizeof(Header)) + " and " + std::to_string(sizeof(JobSlot)) +
                      "): the coordinator and its children come from different builds");
  if (size < sizeof(Header)) return Status(Code::kInternal, "queue segment too small");
  auto* header = reinterpret_cast<Header*>(base);
  if (RequiredBytes(header->slot_count, header->arena_size) > size)
    return Status(Code::kInternal, "queue segment is shorter than its header says");
  auto* slot_array = reinterpret_cast<JobSlot*>(base + align_up(sizeof(Header)));
  return JobQueue(header, slot_array,
                  base + align_up(sizeof(Header)) + align_up(sizeof(JobSlot) * header->slot_count));
}

bool JobQueue::Fits(const JobInfo& info) {
  return info.stem.size() < kMaxStem && info.path.size() < kMaxJobPath && info.source.size() <= kMaxJobSource;
}

std::uint32_t JobQueue::slot_count() const { return header_->slot_count; }
std::uint64_t JobQueue::arena_size() const { return header_->arena_size; }
bool JobQueue::closed() const { return header_->closed.load(std::memory_order_seq_cst) != 0; }

std::span<std::byte> JobQueue::body(SlotId id) {
  const JobSlot& s = slots_[id];
  const std::uint64_t n = s.current() == SlotState::kFilling ? s.capacity : s.length;
  if (s.capacity == 0) return {};
  return {arena_ + s.offset, static_cast<std::size_t>(n)};
}

// ----- allocation ----------------------------------------------------------
//
// The arena is handed out in contiguous extents, first fit going round from
// where the previous extent ended. Jobs are consumed roughly in the order
// they were published, so this behaves like a ring buffer that tolerates
// out-of-order release. The live extents are exactly those recorded in the
// slots, so there is no allocator state to lose when a process dies.

bool JobQueue::ExtentIsFree(std::uint64_t offset, std::uint64_t end, SlotId except) const {
  for (std::uint32_t i = 0; i < header_->slot_count; ++i) {
    if (i == except) continue;
    const JobSlot& s = slots_[i];
    if (s.current() == SlotState::kFree) continue;
    if (s.capacity && s.offset < end && offset < s.offset + s.capacity) return false;
    if (s.move_capacity && s.move_offset < end && offset < s.move_offset + s.move_capacity)
      return false;
  }
  return true;
}

std::optional<std::uint64_t> JobQueue::FindRoom(std::uint64_t capacity, std::uint64_t from) const {
  struct Extent {
    std::uint64_t begin, end;
  };
  std::vector<Extent> live;
  live.reserve(header_->slot_count);
  for (std::uint32_t i = 0; i < header_->slot_count; ++i) {
    const JobSlot& s = slots_[i];
    if (s.current() == SlotState::kFree) continue;
    if (s.capacity) live.push_back({s.offset, s.offset + s.capacity});
    if (s.move_capacity) live.push_back({s.move_offset, s.move_offset + s.move_capacity});
  }
  std::sort(live.begin(), live.end(), [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  const std::uint64_t arena = header_->arena_size;
  // Gaps between live extents, then the first one at or after `from` that fits.
  std::optional<std::uint64_t> first_fit;
  std::uint64_t gap_begin = 0;
  auto consider = [&](std::uint64_t begin, std::uint64_t end) {
    if (end <= begin || end - begin < capacity) return false;
    const std::uint64_t at = std::max(begin, from);
    if (at < end && end - at >= capacity) return true;  // fits at `from` or after
    if (!first_fit) first_fit = begin;
    return false;
  };
  for (const Extent& e : live) {
    if (consider(gap_begin, e.begin)) return std::max(gap_begin, from);
    gap_begin = std::max(gap_begin, e.end);
  }
  if (consider(gap_begin, arena)) return std::max(gap_begin, from);
  return first_fit;
}

std::uint64_t JobQueue::BlockOffset(std::uint64_t arena_offset) const {
  return static_cast<std::uint64_t>(arena_ - reinterpret_cast<std::byte*>(header_)) + arena_offset;
}

bool JobQueue::ReserveArena(std::uint64_t offset, std::uint64_t length) const {
  if (!reserver_ || length == 0) return true;
  return reserver_(BlockOffset(offset), length);
}

std::uint64_t JobQueue::frees() const { return header_->frees.load(std::memory_order_acquire); }

void JobQueue::SpaceFreed() {
  // seq_cst, then the count: see counted_semaphore.h (WaitForSpace reads
  // them the other way round).
  header_->frees.fetch_add(1, std::memory_order_seq_cst);
  header_->space.WakeOne();
}

std::optional<JobQueue::SlotId> JobQueue::Reserve(const JobInfo& info, std::uint64_t capacity,
                                                  std::int32_t owner) {
  capacity = align_up(capacity);
  // Nothing given back since a request at least this large failed: it
  // would fail again (a paused transfer retries often while the arena is full).
  const std::uint64_t frees = header_->frees.load(std::memory_order_acquire);
  if (frees == failed_at_frees_ && capacity >= failed_capacity_) return std::nullopt;
  auto slot = Claim(info, capacity, owner);
  if (!slot) {
    failed_at_frees_ = frees;
    failed_capacity_ = capacity;
  }
  // The extent is ours now: its pages can be reserved without the lock.
  if (slot && !ReserveArena(slots_[*slot].offset, slots_[*slot].capacity)) {
    Abandon(*slot);
    return std::nullopt;
  }
  return slot;
}

std::optional<JobQueue::SlotId> JobQueue::Claim(const JobInfo& info, std::uint64_t capacity,
                                                std::int32_t owner) {
  if (capacity > header_->arena_size || !Fits(info)) return std::nullopt;
  std::lock_guard guard(header_->lock);
  std::optional<SlotId> found;
  for (std::uint32_t i = 0; i < header_->slot_count && !found; ++i)
    if (slots_[i].current() == SlotState::kFree) found = i;
  if (!found) return std::nullopt;
  std::uint64_t offset = 0;
  if (capacity) {
    auto room = FindRoom(capacity, header_->cursor);
    if (!room) return std::nullopt;
    offset = *room;
    header_->cursor = offset + capacity;
  }
  JobSlot& s = slots_[*found];
  s.source_id = info.source_id;
  s.attempt = 0;
  s.fetch = FetchFacts{};
  s.offset = offset;
  s.capacity = capacity;
  s.length = 0;
  s.move_offset = s.move_capacity = 0;
  s.taken_at_ms = 0;
  s.path_is_temp = info.path_is_temp;
  // Both fit (checked above); copy_whole never shortens a name.
  const bool copied = copy_whole(s.path, info.path) && copy_whole(s.stem, info.stem) && copy_whole(s.source, info.source);
  if (!copied) return std::nullopt;
  s.owner.store(owner, std::memory_order_relaxed);
  // Last: until this store the slot is free and its extent unclaimed.
  s.state.store(static_cast<std::uint32_t>(SlotState::kFilling), std::memory_order_release);
  return found;
}

bool JobQueue::Grow(SlotId id, std::uint64_t capacity) {
  capacity = align_up(capacity);
  JobSlot& s = slots_[id];
  if (capacity <= s.capacity) return true;
  if (capacity > header_->arena_size) return false;
  std::uint64_t target = 0;
  std::uint64_t old_capacity = 0;  // set when grown in place
  {
    std::lock_guard guard(header_->lock);
    if (s.capacity && s.offset + capacity <= header_->arena_size &&
        ExtentIsFree(s.offset + s.capacity, s.offset + capacity, id)) {
      old_capacity = s.capacity;
      s.capacity = capacity;  // claimed in place
      header_->cursor = std::max(header_->cursor, s.offset + capacity);
    } else {
      auto room = FindRoom(capacity, header_->cursor);
      if (!room) return false;
      target = *room;
      s.move_offset = target;
      s.move_capacity = capacity;  // claimed: FindRoom now skips it
      header_->cursor = target + capacity;
    }
  }
  if (old_capacity) {  // grown in place: only the new tail needs pages
    if (ReserveArena(s.offset + old_capacity, capacity - old_capacity)) return true;
    std::lock_guard guard(header_->lock);
    s.capacity = old_capacity;
    return false;
  }
  if (!ReserveArena(target, capacity)) {
    std::lock_guard guard(header_->lock);
    s.move_capacity = 0;
    s.move_offset = 0;
    return false;
  }
  // The slot is ours and both extents are claimed, so the copy needs no
  // lock. It goes the way any fill goes. Through a writer, reading the old
  // extent maps its pages here, and the kernel's fault-around may map pages
  // of the new one beside them: a producer that maps nothing drops both.
  if (s.capacity) {
    const std::span<const std::byte> old(arena_ + s.offset, static_cast<std::size_t>(s.capacity));
    const bool copied = Write(target, old).ok();
    if (writer_) {
      DropPages(s.offset, s.capacity);
      DropPages(target, capacity);
    }
    if (!copied) {
      std::lock_guard guard(header_->lock);
      s.move_capacity = 0;
      s.move_offset = 0;
      return false;
    }
  }
  {
    std::lock_guard guard(header_->lock);
    s.offset = target;
    s.capacity = capacity;
    s.move_capacity = 0;  // the old extent is free from here on
    s.move_offset = 0;
  }
  SpaceFreed();
  return true;
}

bool JobQueue::SpillToPath(SlotId id, std::string_view path) {
  if (path.size() >= kMaxJobPath) return false;
  JobSlot& s = slots_[id];
  {
    std::lock_guard guard(header_->lock);
    if (!copy_whole(s.path, path)) return false;
    s.path_is_temp = 1;
    s.capacity = 0;
    s.offset = 0;
  }
  SpaceFreed();
  return true;
}

void JobQueue::DropPages(std::uint64_t offset, std::uint64_t length) {
  if (header_->placement != Placement::kShared || length == 0) return;
  // Whole pages, rounded outwards: a neighbour's bytes on a shared edge page
  // are safe, since only this process's page-table entries go.
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(arena_ + offset) & ~(page - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(arena_ + offset + length) + page - 1) & ~(page - 1);
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void JobQueue::DropPages(SlotId id) { DropPages(slots_[id].offset, slots_[id].capacity); }

Status JobQueue::Write(std::uint64_t offset, std::span<const std::byte> data) {
  if (data.empty()) return Status::Ok();
  if (!writer_) {
    std::memcpy(arena_ + offset, data.data(), data.size());
    return Status::Ok();
  }
  return writer_(BlockOffset(offset), data);
}

Status JobQueue::Fill(SlotId id, std::uint64_t at, std::span<const std::byte> data) {
  const JobSlot& s = slots_[id];
  assert(at + data.size() <= s.capacity);
  return Write(s.offset + at, data);
}

void JobQueue::Publish(SlotId id, std::uint64_t length, const FetchFacts& fetch) {
  JobSlot& s = slots_[id];
  {
    std::lock_guard guard(header_->lock);
    s.length = length;
    s.fetch = fetch;
    MakeReadyLocked(id, header_->next_seq++);
  }
  // After the unlock: a consumer that counted itself before our lock sees
  // the count here; one that counts itself later finds the job in its scan.
  header_->items.WakeOne();
}

void JobQueue::Abandon(SlotId id) { Free(id); }

void JobQueue::WaitForSpace(std::chrono::milliseconds timeout) {
  header_->space.BeginWait();
  // Counted first, then the condition (SpaceFreed does it the other way round).
  if (header_->frees.load(std::memory_order_seq_cst) != failed_at_frees_) return header_->space.CancelWait();
  header_->space.Wait(timeout);
}

// ----- consumer ------------------------------------------------------------

std::optional<TakeResult> JobQueue::TryTake(std::int32_t owner, SlotId* out) {
  std::lock_guard guard(header_->lock);
  std::optional<SlotId> oldest;
  for (std::uint32_t i = 0; i < header_->slot_count; ++i) {
    const JobSlot& s = slots_[i];
    if (s.current() == SlotState::kReady && (!oldest || s.seq < slots_[*oldest].seq)) oldest = i;
  }
  if (oldest) {
    JobSlot& s = slots_[*oldest];
    s.attempt += 1;
    s.taken_at_ms = monotonic_ms();
    s.owner.store(owner, std::memory_order_relaxed);
    s.state.store(static_cast<std::uint32_t>(SlotState::kTaken), std::memory_order_release);
    *out = *oldest;
    return TakeResult::kJob;
  }
  if (closed()) return TakeResult::kClosed;
  return std::nullopt;
}

TakeResult JobQueue::Take(std::int32_t owner, std::chrono::milliseconds timeout, SlotId* out) {
  // Look first: a job published before we came needs no token to be found
  // (and a token may have been lost with a killed consumer).
  if (auto r = TryTake(owner, out)) return *r;
  // Counted, then look again (Publish and Close change the state, then read
  // the count): a job or Close that came in between is seen here, and any
  // later one posts for us.
  header_->items.BeginWait();
  if (auto r = TryTake(owner, out)) {
    header_->items.CancelWait();
    return *r;
  }
  if (!header_->items.Wait(timeout)) return TakeResult::kTimeout;
  return TryTake(owner, out).value_or(TakeResult::kTimeout);  // woken, but another consumer was faster
}

void JobQueue::Release(SlotId id) {
  DropPages(id);
  Free(id);
}

// ----- supervisor ----------------------------------------------------------

void JobQueue::MakeReadyLocked(SlotId id, std::uint64_t seq) {
  JobSlot& s = slots_[id];
  s.seq = seq;
  s.owner.store(0, std::memory_order_relaxed);
  // Last: consumers may take it from here on.
  s.state.store(static_cast<std::uint32_t>(SlotState::kReady), std::memory_order_release);
}

void JobQueue::FreeLocked(SlotId id) {
  JobSlot& s = slots_[id];
  s.owner.store(0, std::memory_order_relaxed);
  s.move_capacity = 0;
  // The extent fields stay as they were; a kFree slot's extent is ignored.
  s.state.store(static_cast<std::uint32_t>(SlotState::kFree), std::memory_order_release);
}

SlotView JobQueue::ViewLocked(SlotId id, bool full) const {
  const JobSlot& s = slots_[id];
  SlotView v;
  v.slot = id;
  v.state = s.current();
  v.owner = s.owner.load(std::memory_order_relaxed);
  v.source_id = s.source_id;
  v.attempt = s.attempt;
  v.taken_at_ms = s.taken_at_ms;
  if (!full) return v;
  v.stem = text_of(s.stem);
  v.source = text_of(s.source);
  v.path = text_of(s.path);
  v.path_is_temp = s.path_is_temp != 0;
  v.fetch = s.fetch;
  return v;
}

std::vector<SlotView> JobQueue::Snapshot() {
  std::vector<SlotView> views;
  views.reserve(header_->slot_count);  // no allocation under the lock
  std::lock_guard guard(header_->lock);
  for (std::uint32_t i = 0; i < header_->slot_count; ++i) {
    if (slots_[i].current() == SlotState::kFree) continue;
    views.push_back(ViewLocked(i, /*full=*/false));
  }
  return views;
}

QueueStats JobQueue::Stats() {
  QueueStats stats;
  stats.arena_size = header_->arena_size;
  std::lock_guard guard(header_->lock);
  for (std::uint32_t i = 0; i < header_->slot_count; ++i) {
    const JobSlot& s = slots_[i];
    switch (s.current()) {
      case SlotState::kFree: ++stats.free; continue;
      case SlotState::kFilling: ++stats.filling; break;
      case SlotState::kReady: ++stats.ready; break;
      case SlotState::kTaken: ++stats.taken; break;
    }
    stats.arena_used += s.capacity + s.move_capacity;
  }
  return stats;
}

std::vector<SlotView> JobQueue::ReclaimDead(std::int32_t dead) {
  header_->lock.release_if_held_by(dead);
  std::vector<SlotView> taken;
  bool freed = false;
  {
    std::lock_guard guard(header_->lock);
    for (std::uint32_t i = 0; i < header_->slot_count; ++i) {
      JobSlot& s = slots_[i];
      if (s.owner.load(std::memory_order_relaxed) != dead) continue;
      const SlotState st = s.current();
      if (st == SlotState::kFilling) {
        FreeLocked(i);  // a half-written body: no consumer has seen it
        freed = true;
      } else if (st == SlotState::kTaken) {
        taken.push_back(ViewLocked(i, /*full=*/true));
      }
    }
  }
  if (freed) SpaceFreed();
  // The dead consumer may have swallowed a token meant for a job still ready.
  header_->items.WakeOne();
  return taken;
}

void JobQueue::Touch(SlotId id) {
  std::lock_guard guard(header_->lock);  // the supervisor reads it under the lock
  slots_[id].taken_at_ms = monotonic_ms();
}

void JobQueue::Requeue(SlotId id) {
  {
    std::lock_guard guard(header_->lock);
    MakeReadyLocked(id, /*seq=*/0);  // ahead of everything published: it has waited longest
  }
  header_->items.WakeOne();
}

void JobQueue::Free(SlotId id) {
  {
    std::lock_guard guard(header_->lock);
    FreeLocked(id);
  }
  SpaceFreed();
}

std::optional<SlotView> JobQueue::FreeIfReady(SlotId id, std::uint64_t source_id) {
  std::optional<SlotView> freed;
  {
    std::lock_guard guard(header_->lock);
    if (slots_[id].current() != SlotState::kReady || slots_[id].source_id != source_id) return std::nullopt;
    freed = ViewLocked(id, /*full=*/true);
    FreeLocked(id);
  }
  SpaceFreed();
  return freed;
}

void JobQueue::Close() {
  // seq_cst, then the count: a consumer counts itself, then reads `closed`.
  header_->closed.store(1, std::memory_order_seq_cst);
  header_->items.WakeAll();
}

QueueWakeups JobQueue::wakeups() const {
  return {header_->items.pending(), header_->items.waiters(), header_->space.pending(), header_->space.waiters()};
}

}  // namespace thumbmill
