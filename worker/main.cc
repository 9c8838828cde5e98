// worker: one resize worker process. Started by the coordinator; see
// worker/worker_loop.h for what it does.
#include <unistd.h>

#include <cstdlib>

#include "shared/process_setup.h"
#include "shared/wire.h"
#include "worker/resize.h"
#include "worker/worker_loop.h"

int main(int argc, char** argv) {
  auto child = thumbmill::attach_child("worker", argc, argv);
  // Test-only: a worker that cannot start, for the supervisor's give-up rule
  // (tests/fault_test.cc). Read only when set.
  if (std::getenv("THUMBMILL_TEST_WORKER_START_FAILS")) return 1;
  thumbmill::init_vips(argv[0], child.args.options.allow_untrusted_formats);
  return thumbmill::run_worker(child.queue, child.args.options, thumbmill::kResultFd, ::getpid());
}
