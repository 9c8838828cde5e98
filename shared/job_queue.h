// JobQueue: the bounded queue between the downloader and the resize workers.
//
// One block of memory holds a header, a table of job slots and a byte arena.
// The process build places that block in a POSIX shared-memory segment
// (shm_segment.h); the threaded build places the very same block in ordinary
// memory (HeapQueueMemory below). The logic here does not know which.
//
//   producer (downloader)             consumers (workers)
//   Reserve ─► kFilling ── Publish ─► kReady ── Take ─► kTaken ── Release ─► kFree
//                  └── Abandon ─► kFree          ▲                   │
//                                                └── Requeue ◄───────┘ (supervisor,
//                                                    after the owner died)
//
// A job's body lives in one contiguous extent of the arena, written in place
// by the producer as it arrives and decoded in place by the consumer: no
// copy, no temporary file. A body that does not fit travels as a file path
// instead (see JobSlot::path). When no slot or no arena space is free,
// Reserve fails and the producer waits: memory stays bounded whatever the
// number of sources.
//
// Crash safety: every slot records its owner's id, so the supervisor can
// take back what a dead process held (ReclaimDead). No one ever waits on a
// condition variable: sleepers wait on semaphores with a timeout, and the
// lock is a PidLock whose critical sections are a few stores each. The
// semaphores are posted only for a counted sleeper and waited on against
// CLOCK_MONOTONIC (counted_semaphore.h).
//
// Layout: the block starts with a QueueStamp that records the sizes of the
// header and of a JobSlot; Attach refuses a block whose stamp differs from
// this build's, so two builds with different layouts never share a segment.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/counted_semaphore.h"
#include "shared/fetch_facts.h"
#include "shared/pid_lock.h"
#include "shared/status.h"

namespace thumbmill {

enum class SlotState : std::uint32_t { kFree = 0, kFilling, kReady, kTaken };

/// Longest path a job can carry (a local source, or a spilled body).
inline constexpr std::size_t kMaxJobPath = 512;
/// Longest output stem (output_names.h caps stems well below this).
inline constexpr std::size_t kMaxStem = 128;
/// Longest source location a job names (source_list.h's kMaxSourceLength).
inline constexpr std::size_t kMaxJobSource = 3000;

/// What a producer says about a job when it reserves it.
struct JobInfo {
  std::uint64_t source_id = 0;
  std::string_view stem;  // output name stem, < kMaxStem bytes (see Fits)
  std::string_view path;  // empty: the body is in the arena; < kMaxJobPath bytes
  bool path_is_temp = false;  // remove `path` once the job is released
  std::string_view source;    // the source's location (URL, s3:// URL or path), <= kMaxJobSource bytes
};

/// One job slot. Fields other than `state` and `owner` are written only by
/// whoever owns the slot (the producer while kFilling, the consumer while
/// kTaken) or under the queue lock; the lock's acquire/release orders them.
struct JobSlot {
  std::atomic<std::uint32_t> state{0};  // SlotState
  std::atomic<std::int32_t> owner{0};   // producer or consumer id; 0 when none
  std::uint64_t seq = 0;                // publish order: Take is FIFO
  std::uint64_t source_id = 0;
  std::uint32_t attempt = 0;            // times taken so far
  FetchFacts fetch;                     // set by Publish: what the producer's fetch did
  std::uint64_t offset = 0;             // body extent in the arena
  std::uint64_t capacity = 0;
  std::uint64_t length = 0;             // bytes of body, set by Publish
  std::uint64_t move_offset = 0;        // second extent while Grow relocates
  std::uint64_t move_capacity = 0;
  std::int64_t taken_at_ms = 0;         // CLOCK_MONOTONIC, for job deadlines
  std::uint8_t path_is_temp = 0;
  char path[kMaxJobPath] = {};
  char stem[kMaxStem] = {};
  // What the job was made from, for what is stored with its outputs (an
  // upload's metadata and manifest record).
  char source[kMaxJobSource + 1] = {};

  SlotState current() const { return static_cast<SlotState>(state.load(std::memory_order_acquire)); }
};

/// A copy of one slot taken under the queue lock, for the supervisor: its
/// policy code reads these, never the shared slot (which another process
/// may reuse as soon as it is free). Snapshot fills the fields up to
/// `taken_at_ms` only (it runs often, under the lock); ReclaimDead and
/// FreeIfReady, which hand over a job to settle, fill all of them.
struct SlotView {
  std::uint32_t slot = 0;
  SlotState state = SlotState::kFree;
  std::int32_t owner = 0;
  std::uint64_t source_id = 0;
  std::uint32_t attempt = 0;
  std::int64_t taken_at_ms = 0;
  std::string stem;
  std::string source;         // what the job was made from (its outputs' names need it)
  std::string path;           // the job's body file, "" when in the arena
  bool path_is_temp = false;  // `path` is a spill file, to remove with the job
  FetchFacts fetch;
};

/// The first bytes of every queue block, at the same offsets in every
/// build: what Attach reads before anything else. A coordinator and children
/// built from different sources (a JobSlot of another size, say) would
/// misread each other's records; with the sizes in the stamp, Attach
/// refuses instead.
struct QueueStamp {
  std::uint64_t magic = 0;         // written last by Create
  std::uint32_t version = 0;       // of the queue's protocol
  std::uint32_t header_bytes = 0;  // sizeof the header, this stamp included
  std::uint32_t slot_bytes = 0;    // sizeof(JobSlot)
  std::uint32_t reserved = 0;
};
static_assert(sizeof(QueueStamp) == 24);

/// The queue's semaphores as they stand (tests, statistics): tokens posted
/// and not yet taken, and sleepers counted.
struct QueueWakeups {
  int items_pending = 0, items_waiters = 0, space_pending = 0, space_waiters = 0;
};

struct QueueStats {
  std::uint32_t filling = 0, ready = 0, taken = 0, free = 0;
  std::uint64_t arena_used = 0;  // bytes in live extents
  std::uint64_t arena_size = 0;
};

enum class TakeResult { kJob, kTimeout, kClosed };

/// Where the queue's block lives. kShared: every process maps the same
/// pages. A consumer done with a body drops its own mapping of it at Release
/// (MADV_DONTNEED; the data stays in the segment), so a worker's resident
/// memory holds only the body it is working on. A producer drops nothing at
/// Publish: it either writes through the segment's file and maps nothing
/// (set_arena_writer), or keeps the arena mapped (the downloader, which
/// writes every page of it over and over; SharedSegment::BackProducer).
/// kPrivate (one process, ordinary memory): pages stay; giving
/// them back at Release was measured to cost more (a zero-fill on every
/// reuse, +1 s of system time over 200 photos) than it saved, since the
/// arena fills up ahead of the workers anyway.
enum class Placement { kShared, kPrivate };

class JobQueue {
 public:
  using SlotId = std::uint32_t;

  /// Bytes a queue with `slots` slots and an arena of `arena_bytes` needs.
  static std::size_t RequiredBytes(std::uint32_t slots, std::uint64_t arena_bytes);

  /// Builds a new, empty queue in `memory` (zero-filled, at least
  /// RequiredBytes long, page aligned).
  static JobQueue Create(void* memory, std::size_t size, std::uint32_t slots,
                         std::uint64_t arena_bytes, Placement placement);
  /// Attaches to a queue another process built. Fails when the block does not
  /// hold one (wrong magic or version), holds one of another layout (header
  /// or slot sizes of another build: the message says "layout"), or sizes
  /// that do not add up.
  static Result<JobQueue> Attach(void* memory, std::size_t size);

  /// Whether `info`'s stem and path fit a slot whole. One that does not is
  /// never reserved: a shortened path would name another file.
  static bool Fits(const JobInfo& info);

  // ----- producer -------------------------------------------------------

  /// How this process makes arena pages safe to touch before it writes to
  /// them (the shared placement reserves them in /dev/shm; see
  /// SharedSegment::Reserve). Called with byte offsets into the queue's
  /// block; an extent it fails for is not handed out. Per process, not
  /// shared: set it after Create or Attach. Default: none needed.
  using PageReserver = std::function<bool(std::uint64_t offset, std::uint64_t length)>;
  void set_page_reserver(PageReserver reserver) { reserver_ = std::move(reserver); }

  /// How this process copies a body's bytes into the arena (Fill). Called
  /// with a byte offset into the queue's block. A producer whose resident
  /// memory must stay small writes through the segment's file
  /// (SharedSegment::Write): it maps none of the pages it fills, so it has
  /// none to drop. Per process, like the reserver. Default: a memcpy into
  /// this process's mapping.
  using ArenaWriter = std::function<Status(std::uint64_t offset, std::span<const std::byte> data)>;
  void set_arena_writer(ArenaWriter writer) { writer_ = std::move(writer); }

  /// Claims a free slot with an arena extent of `capacity` bytes (0 for a
  /// job whose body is a path) for `owner`. nullopt: no slot or no
  /// contiguous room right now (or its pages could not be reserved);
  /// WaitForSpace and try again. REQUIRES: Fits(info) (else nullopt, always).
  std::optional<SlotId> Reserve(const JobInfo& info, std::uint64_t capacity, std::int32_t owner);

  /// Enlarges a kFilling slot's extent to `capacity`, keeping its bytes:
  /// in place when the space after it is free, else by moving it. False when
  /// the arena has no room now. REQUIRES: caller owns the slot.
  bool Grow(SlotId slot, std::uint64_t capacity);

  /// Turns the slot's body into a file: sets `path` (a spilled temp file) and
  /// gives its arena extent back. False, changing nothing, when `path` is
  /// kMaxJobPath bytes or longer. REQUIRES: caller owns the kFilling slot.
  [[nodiscard]] bool SpillToPath(SlotId slot, std::string_view path);

  /// Copies `data` into the kFilling slot's extent at byte `at` of it.
  /// REQUIRES: caller owns the slot; at + data.size() <= its capacity.
  Status Fill(SlotId slot, std::uint64_t at, std::span<const std::byte> data);

  /// Makes the job available to consumers, with what its fetch did (the
  /// consumer reports it). REQUIRES: length <= capacity, or any length for a
  /// path job (capacity 0: it is the file's size).
  void Publish(SlotId slot, std::uint64_t length, const FetchFacts& fetch);
  void Publish(SlotId slot, std::uint64_t length, std::uint32_t fetch_ms) {
    FetchFacts facts;
    facts.fetch_ms = fetch_ms;
    Publish(slot, length, facts);
  }

  /// Gives back a kFilling slot whose download failed.
  void Abandon(SlotId slot);

  /// Sleeps until a slot or arena space may have been freed since this
  /// process's last failed Reserve, or `timeout` (CLOCK_MONOTONIC). Returns
  /// at once when something was freed already.
  void WaitForSpace(std::chrono::milliseconds timeout);

  /// A number that changes whenever a slot or arena space is given back: a
  /// producer that could not Reserve need not try again until it does.
  std::uint64_t frees() const;

  // ----- consumer -------------------------------------------------------

  /// Takes the oldest ready job for `owner`, waiting up to `timeout`
  /// (CLOCK_MONOTONIC: a wall-clock step changes nothing). kClosed once
  /// Close() was called and no job is ready.
  TakeResult Take(std::int32_t owner, std::chrono::milliseconds timeout, SlotId* slot);

  /// Gives the slot and its arena extent back. REQUIRES: caller took it.
  void Release(SlotId slot);

  /// Restarts the job's deadline clock (taken_at_ms): its owner is alive and
  /// waiting on the next stage (room in the upload queue), not stuck in its
  /// own work. REQUIRES: caller took it.
  void Touch(SlotId slot);

  // ----- either side ----------------------------------------------------

  JobSlot& slot(SlotId id) { return slots_[id]; }
  const JobSlot& slot(SlotId id) const { return slots_[id]; }
  /// The slot's arena extent (its capacity while kFilling, its published
  /// length afterwards). Empty for a path job.
  std::span<std::byte> body(SlotId id);
  std::uint32_t slot_count() const;
  std::uint64_t arena_size() const;
  /// Bytes of the block this queue occupies (RequiredBytes of its sizes).
  std::size_t block_bytes() const { return RequiredBytes(slot_count(), arena_size()); }

  // ----- supervisor -----------------------------------------------------

  /// Every slot that is not free.
  std::vector<SlotView> Snapshot();
  QueueStats Stats();

  /// After `dead` exited: releases the lock if it held it, frees the slots
  /// it was filling, and returns the jobs it had taken (still kTaken, for the
  /// caller to Requeue or Free).
  std::vector<SlotView> ReclaimDead(std::int32_t dead);

  /// Puts a taken job back at the head of the line (its body stays where it
  /// is, so nothing is downloaded again).
  void Requeue(SlotId slot);
  /// Frees a slot whatever its state (for jobs the supervisor gave up on).
  void Free(SlotId slot);
  /// Frees the slot only if it is still kReady (not yet taken) and still
  /// holds `source_id`. For a run that is stopping: jobs no worker has
  /// started are dropped. Returns the job freed, copied under the lock.
  std::optional<SlotView> FreeIfReady(SlotId slot, std::uint64_t source_id);

  /// No more jobs will be published: wakes every consumer waiting in Take,
  /// and every Take returns kClosed once the ready jobs are gone.
  void Close();
  bool closed() const;

  QueueWakeups wakeups() const;

 private:
  struct Header;
  JobQueue(Header* header, JobSlot* slots, std::byte* arena)
      : header_(header), slots_(slots), arena_(arena) {}

  /// Take's scan: the oldest ready job taken for `owner`, kClosed, or
  /// nullopt when there is nothing to take now.
  std::optional<TakeResult> TryTake(std::int32_t owner, SlotId* out);
  /// Reserve's bookkeeping, under the lock.
  std::optional<SlotId> Claim(const JobInfo& info, std::uint64_t capacity, std::int32_t owner);
  // REQUIRES: the lock is held.
  std::optional<std::uint64_t> FindRoom(std::uint64_t capacity, std::uint64_t from) const;
  bool ExtentIsFree(std::uint64_t offset, std::uint64_t end, SlotId except) const;
  /// Drops this process's mapping of the slot's body pages, or of arena
  /// bytes [offset, offset + length) (kShared only; the data stays).
  void DropPages(SlotId slot);
  void DropPages(std::uint64_t offset, std::uint64_t length);
  /// Copies `data` to arena byte `offset`, through the writer if there is one.
  Status Write(std::uint64_t offset, std::span<const std::byte> data);
  /// The byte offset in the queue's block of arena byte `arena_offset`.
  std::uint64_t BlockOffset(std::uint64_t arena_offset) const;
  void FreeLocked(SlotId slot);
  SlotView ViewLocked(SlotId slot, bool full) const;
  void MakeReadyLocked(SlotId slot, std::uint64_t seq);

  /// Asks the reserver for the arena bytes [offset, offset + length).
  bool ReserveArena(std::uint64_t offset, std::uint64_t length) const;

  /// A slot or arena space was given back: count it and wake a producer.
  void SpaceFreed();

  Header* header_;
  JobSlot* slots_;
  std::byte* arena_;
  PageReserver reserver_;
  ArenaWriter writer_;
  // This process's last failed Reserve (see Header::frees).
  std::uint64_t failed_at_frees_ = ~std::uint64_t{0};
  std::uint64_t failed_capacity_ = 0;
};

/// The threaded build's placement: the queue's block in ordinary (anonymous,
/// private) memory.
class HeapQueueMemory {
 public:
  /// kIoError when the memory cannot be mapped.
  static Result<std::unique_ptr<HeapQueueMemory>> Create(std::uint32_t slots, std::uint64_t arena_bytes);
  /// Throws std::bad_alloc when the memory cannot be mapped (as `new` does).
  HeapQueueMemory(std::uint32_t slots, std::uint64_t arena_bytes);
  ~HeapQueueMemory();
  HeapQueueMemory(const HeapQueueMemory&) = delete;
  HeapQueueMemory& operator=(const HeapQueueMemory&) = delete;

  JobQueue& queue() { return queue_; }

 private:
  void* memory_;
  std::size_t size_;
  JobQueue queue_;
};

/// Milliseconds on CLOCK_MONOTONIC, which every process on the machine shares.
std::int64_t monotonic_ms();

}  // namespace thumbmill
