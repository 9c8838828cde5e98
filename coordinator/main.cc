// coordinator: the command users run. See coordinator/coordinator.h.
#include "coordinator/coordinator.h"

int main(int argc, char** argv) {
  return thumbmill::coordinator_main(argc, argv, thumbmill::make_process_pipeline);
}
