#include "shared/process_setup.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>

#include "shared/queue_layout.h"
#include "shared/wire.h"

namespace thumbmill {

int child_failed_to_start(const char* role, const Status& status) {
  std::fprintf(stderr, "thumbmill %s: %s\n", role, status.ToString().c_str());
  return kChildFatalExit;
}

ChildCommand child_command(const std::string& segment, const Options& options, const std::string& temp_dir) {
  return {{"--segment", segment, "--temp-dir", temp_dir}, options_to_json(options)};
}

std::vector<std::string> child_title_arguments(const std::string& title) { return {"--title", title}; }

std::string child_comm(const std::string& title) {
  constexpr std::string_view kWorker = "worker ";
  if (title.rfind(kWorker, 0) == 0) return ("thumbmill-w" + title.substr(kWorker.size())).substr(0, 15);
  if (title == "downloader") return "thumbmill-dl";
  if (title == "uploader") return "thumbmill-up";
  return ("thumbmill-" + title).substr(0, 15);
}

namespace {

/// The whole of descriptor `fd`, read from offset 0 (the descriptor may be
/// shared with other children: pread leaves its offset alone).
Result<std::string> read_whole(int fd) {
  std::string text;
  char buffer[4096];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof buffer, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("cannot read the options on descriptor " + std::to_string(fd));
    if (n == 0) return text;
    text.append(buffer, static_cast<std::size_t>(n));
    at += n;
  }
}

/// Names this process "thumbmill: <title>" for ps and top -c (argv rewritten
/// in place: the strings of argv are contiguous, and what they spanned is
/// all there is to write in) and thumbmill-... for top (comm).
void set_process_title(int argc, char** argv, const std::string& title) {
  ::prctl(PR_SET_NAME, child_comm(title).c_str(), 0, 0, 0);
  if (argc < 1) return;
  char* begin = argv[0];
  char* end = argv[argc - 1] + std::strlen(argv[argc - 1]);  // the last NUL
  const std::string text = "thumbmill: " + title;
  const std::size_t room = static_cast<std::size_t>(end - begin);
  const std::size_t n = std::min(text.size(), room);
  std::memcpy(begin, text.data(), n);
  std::memset(begin + n, 0, room - n + 1);
}

}  // namespace

Result<AttachedChild> attach_child(int argc, char** argv) {
  // The coordinator armed PR_SET_PDEATHSIG before exec; if it died before
  // that, we were re-parented already and nobody will ever read our results.
  if (::getppid() == 1) return Status(Code::kInternal, "coordinator is gone");
  ::signal(SIGPIPE, SIG_IGN);

  ChildArgs args;
  CLI::App app("thumbmill child (started by coordinator)");
  app.add_option("--segment", args.segment, "shared-memory segment name")->required();
  app.add_option("--temp-dir", args.temp_dir, "the run's temp directory");
  app.add_option("--title", args.title, "what ps and top call this process")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return Status(Code::kInvalidArgument, std::string("bad arguments: ") + e.what());
  }
  auto options_json = read_whole(kOptionsFd);
  ::close(kOptionsFd);  // read once; children hold only 0-4 while they run
  if (!options_json.ok()) return options_json.status();
  auto options = options_from_json(*options_json);
  if (!options.ok()) return options.status();
  args.options = std::move(options.value());
  set_process_title(argc, argv, args.title);

  auto segment = SharedSegment::Open(args.segment);
  if (!segment.ok()) return segment.status();
  auto queue = JobQueue::Attach((*segment)->data(), (*segment)->size());
  if (!queue.ok()) return queue.status();
  AttachedChild child{std::move(args), std::move(segment.value()), queue.value(), std::nullopt};
  auto upload = attach_upload_queue(child.segment->data(), child.segment->size(), child.queue);
  if (!upload.ok()) return upload.status();
  child.upload_queue = *upload;
  if (child.args.options.out_is_s3() && !child.upload_queue)
    return Status(Code::kInternal, "the segment holds no upload queue, though --out is a bucket");
  // Producers reserve an extent's pages before writing to it (a full
  // /dev/shm then refuses the extent instead of killing us with SIGBUS).
  // The downloader fills the fetch queue through its mapping; a worker
  // queues thumbnails through the file, so that its RSS stays its own.
  using Fills = SharedSegment::Fills;
  child.segment->BackProducer(child.queue, 0, Fills::kThroughMapping);
  if (child.upload_queue)
    child.segment->BackProducer(*child.upload_queue, page_aligned_offset(child.queue.block_bytes()), Fills::kThroughFile);
  return child;
}

}  // namespace thumbmill
