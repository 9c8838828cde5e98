// coordinator-threaded: the same pipeline in one process, threads instead of
// processes (see coordinator/thread_crew.h); `--workers 0` runs the
// sequential baseline.
#include "coordinator/thread_crew.h"

int main(int argc, char** argv) {
  return thumbmill::coordinator_main(argc, argv, thumbmill::make_thread_pipeline);
}
