#include "shared/process_setup.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>

#include <CLI/CLI.hpp>

#include "shared/wire.h"

namespace thumbmill {

int child_failed_to_start(const char* role, const Status& status) {
  std::fprintf(stderr, "thumbmill %s: %s\n", role, status.ToString().c_str());
  return kChildFatalExit;
}

std::vector<std::string> child_arguments(const std::string& segment, const Options& options,
                                         const std::string& temp_dir) {
  return {"--segment", segment, "--options", options_to_json(options), "--temp-dir", temp_dir};
}

Result<AttachedChild> attach_child(int argc, char** argv) {
  // The coordinator armed PR_SET_PDEATHSIG before exec; if it died before
  // that, we were re-parented already and nobody will ever read our results.
  if (::getppid() == 1) return Status(Code::kInternal, "coordinator is gone");
  ::signal(SIGPIPE, SIG_IGN);

  ChildArgs args;
  std::string options_json;
  CLI::App app("thumbmill child (started by coordinator)");
  app.add_option("--segment", args.segment, "shared-memory segment name")->required();
  app.add_option("--options", options_json, "run options as JSON")->required();
  app.add_option("--temp-dir", args.temp_dir, "the run's temp directory");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return Status(Code::kInvalidArgument, std::string("bad arguments: ") + e.what());
  }
  auto options = options_from_json(options_json);
  if (!options.ok()) return options.status();
  args.options = std::move(options.value());

  auto segment = SharedSegment::Open(args.segment);
  if (!segment.ok()) return segment.status();
  auto queue = JobQueue::Attach((*segment)->data(), (*segment)->size());
  if (!queue.ok()) return queue.status();
  AttachedChild child{std::move(args), std::move(segment.value()), queue.value()};
  // Producers reserve an extent's pages before writing to it: a full
  // /dev/shm then refuses the extent instead of killing us with SIGBUS.
  child.queue.set_page_reserver([seg = child.segment.get()](std::uint64_t offset, std::uint64_t length) {
    return seg->Reserve(offset, length).ok();
  });
  return child;
}

}  // namespace thumbmill
