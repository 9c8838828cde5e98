// worker: one resize worker process. Started by the coordinator; see
// worker/worker_loop.h for what it does.
#include <unistd.h>

#include <cstdlib>

#include "shared/memory_bound.h"
#include "shared/process_setup.h"
#include "shared/wire.h"
#include "worker/memory_limit.h"
#include "worker/resize.h"
#include "worker/worker_loop.h"

int main(int argc, char** argv) {
  using namespace thumbmill;
  auto child = attach_child(argc, argv);
  if (!child.ok()) return child_failed_to_start("worker", child.status());
  // Test-only: a worker that cannot start, for the supervisor's give-up rule
  // (tests/fault_test.cc). Read only when set.
  if (std::getenv("THUMBMILL_TEST_WORKER_START_FAILS")) return 1;
  // Before libvips starts: its threads and buffers are held to it too.
  const std::uint64_t limit_mib = worker_memory_limit_mib(child->args.options.max_decode_mb);
  if (Status limited = limit_worker_memory(limit_mib << 20); !limited.ok())
    return child_failed_to_start("worker", limited);
  if (Status vips = init_vips(argv[0], child->args.options.allow_untrusted_formats); !vips.ok())
    return child_failed_to_start("worker", vips);  // no point in starting another worker
  JobQueue* uploads = child->upload_queue ? &*child->upload_queue : nullptr;
  return run_worker(child->queue, child->args.options, kResultFd, ::getpid(), uploads);
}
