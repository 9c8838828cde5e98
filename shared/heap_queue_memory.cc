// HeapQueueMemory (declared in job_queue.h): the threaded build's placement
// of the queue's block.
#include <sys/mman.h>

#include <new>
#include <string>

#include "shared/job_queue.h"

namespace thumbmill {

HeapQueueMemory::HeapQueueMemory(std::uint32_t slots, std::uint64_t arena_bytes)
    : memory_(nullptr),
      size_(JobQueue::RequiredBytes(slots, arena_bytes)),
      queue_([&] {
        // Anonymous private pages: zero-filled and only backed once touched,
        // exactly like the shared segment.
        memory_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory_ == MAP_FAILED) throw std::bad_alloc();
        return JobQueue::Create(memory_, size_, slots, arena_bytes, Placement::kPrivate);
      }()) {}

Result<std::unique_ptr<HeapQueueMemory>> HeapQueueMemory::Create(std::uint32_t slots, std::uint64_t arena_bytes) {
  try {
    return std::make_unique<HeapQueueMemory>(slots, arena_bytes);
  } catch (const std::bad_alloc&) {
    return Status(Code::kIoError, "cannot map " + std::to_string(JobQueue::RequiredBytes(slots, arena_bytes) >> 20) +
                                      " MiB for the queue (lower --queue-mb)");
  }
}

HeapQueueMemory::~HeapQueueMemory() { ::munmap(memory_, size_); }

}  // namespace thumbmill
