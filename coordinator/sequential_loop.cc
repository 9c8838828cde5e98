#include "coordinator/sequential_loop.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "downloader/fetcher.h"
#include "shared/fd_io.h"
#include "shared/wire.h"
#include "uploader/uploader_loop.h"
#include "worker/worker_loop.h"

namespace thumbmill {
namespace {

/// The next request, waiting for one; nullopt at end of file.
std::optional<FetchRequest> next_request(int fd, FrameReader& reader, bool& eof) {
  for (;;) {
    if (auto frame = reader.Next()) {
      if (frame->type == MessageType::kFetchRequest) return frame->as<FetchRequest>();
      continue;
    }
    if (eof) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, -1);
    eof = !reader.Fill(fd);
  }
}

}  // namespace

int run_sequential(JobQueue& queue, JobQueue* uploads, const Options& options, const std::string& temp_dir,
                   int request_fd, int result_fd) {
  // Fill reads until the pipe is empty: on a blocking fd it would wait.
  if (Status s = set_nonblocking(request_fd); !s.ok()) {
    std::fprintf(stderr, "thumbmill: sequential loop: request pipe: %s\n", s.ToString().c_str());
    return 1;
  }
  const auto owner = static_cast<std::int32_t>(::gettid());
  Fetcher fetcher(queue, options, temp_dir, owner);
  FrameReader reader;
  bool eof = false;
  while (auto request = next_request(request_fd, reader, eof)) {
    fetcher.Start(*request);
    while (fetcher.active() > 0) fetcher.Wait(-1, std::chrono::milliseconds(1000));
    for (const FetchOutcome& outcome : fetcher.TakeOutcomes()) {
      if (!write_record(result_fd, MessageType::kFetchOutcome, outcome).ok()) return 1;
      if (static_cast<Code>(outcome.code) != Code::kOk || outcome.not_modified) continue;
      JobQueue::SlotId slot;
      // The job just published is the only one in the queue.
      if (queue.Take(owner, std::chrono::milliseconds(0), &slot) != TakeResult::kJob) continue;
      if (!handle_job(queue, slot, options, result_fd, uploads)) return 1;
      // Then its upload, before the next source: fetch, resize, upload.
      if (uploads && run_uploader(*uploads, options, result_fd, owner, /*until_empty=*/true) != 0) return 1;
    }
  }
  return 0;
}

}  // namespace thumbmill
