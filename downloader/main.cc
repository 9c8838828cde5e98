// The downloader process: started by the coordinator with FetchRequests on
// fd 3 and FetchOutcomes going out on fd 4 (wire.h).
#include "downloader/downloader_loop.h"
#include "shared/process_setup.h"
#include "shared/wire.h"

int main(int argc, char** argv) {
  using namespace thumbmill;
  AttachedChild child = attach_child("downloader", argc, argv);
  return run_downloader(child.queue, child.args.options, child.args.temp_dir, kRequestFd, kResultFd);
}
