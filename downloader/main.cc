// The downloader process: started by the coordinator with FetchRequests on
// fd 3 and FetchOutcomes going out on fd 4 (wire.h).
#include <cstdlib>

#include "downloader/downloader_loop.h"
#include "shared/process_setup.h"
#include "shared/wire.h"

int main(int argc, char** argv) {
  using namespace thumbmill;
  auto child = attach_child(argc, argv);
  if (!child.ok()) return child_failed_to_start("downloader", child.status());
  // Test-only: a downloader that cannot start, for the supervisor's give-up
  // rule (tests/fault_test.cc). Read only when set.
  if (std::getenv("THUMBMILL_TEST_DOWNLOADER_START_FAILS")) return 1;
  return run_downloader(child->queue, child->args.options, child->args.temp_dir, kRequestFd, kResultFd);
}
