#include "downloader/downloader_loop.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <deque>

#include "downloader/fetcher.h"
#include "shared/fd_io.h"
#include "shared/wire.h"

namespace thumbmill {
namespace {

using namespace std::chrono_literals;

/// Longest sleep when nothing is due: only a safety net, since new requests
/// and network activity wake the loop anyway.
constexpr auto kIdleWait = 1000ms;
/// Requests are waiting for a free queue slot, which nothing signals to this
/// loop: look again soon.
constexpr auto kBlockedWait = 20ms;

/// The request side: frames read so far and not started yet.
struct Requests {
  explicit Requests(int fd) : fd(fd) {}

  int fd;
  FrameReader reader;
  std::deque<FetchRequest> waiting;
  bool eof = false;

  void Read() {
    if (eof) return;
    eof = !reader.Fill(fd);
    while (auto frame = reader.Next()) {
      if (frame->type != MessageType::kFetchRequest) {
        std::fprintf(stderr, "thumbmill downloader: ignoring a message of type %u\n",
                     static_cast<unsigned>(frame->type));
        continue;
      }
      FetchRequest request = frame->as<FetchRequest>();
      if (!well_formed(request)) {
        // Still answered (Start fails an empty source at once), so the
        // coordinator does not wait for it forever; never read out of bounds.
        std::fprintf(stderr, "thumbmill downloader: malformed request for source %llu\n",
                     static_cast<unsigned long long>(request.source_id));
        request.url_length = 0;
        request.url[0] = '\0';
        request.stem[0] = '\0';
      }
      waiting.push_back(request);
    }
    if (reader.corrupt()) {
      std::fprintf(stderr, "thumbmill downloader: request pipe sent a frame too large to be a record\n");
      eof = true;
    }
  }
};

bool send_outcomes(Fetcher& fetcher, int result_fd) {
  for (const FetchOutcome& outcome : fetcher.TakeOutcomes())
    if (!write_record(result_fd, MessageType::kFetchOutcome, outcome).ok()) return false;
  return true;
}

}  // namespace

int run_downloader(JobQueue& queue, const Options& options, const std::string& temp_dir,
                   int request_fd, int result_fd) {
  if (Status s = set_nonblocking(request_fd); !s.ok()) {
    std::fprintf(stderr, "thumbmill downloader: request pipe: %s\n", s.ToString().c_str());
    return 1;
  }
  // The owner id recorded in the slots we fill: the supervisor reclaims a
  // dead downloader's slots by it.
  Fetcher fetcher(queue, options, temp_dir, static_cast<std::int32_t>(::getpid()));
  Requests requests(request_fd);
  for (;;) {
    requests.Read();
    while (!requests.waiting.empty() && fetcher.CanStart()) {
      fetcher.Start(requests.waiting.front());
      requests.waiting.pop_front();
    }
    if (!send_outcomes(fetcher, result_fd)) {
      std::fprintf(stderr, "thumbmill downloader: result pipe is closed; stopping\n");
      return 1;  // ~Fetcher gives back what we were filling
    }
    if (requests.eof && requests.waiting.empty() && fetcher.active() == 0) return 0;
    fetcher.Wait(requests.eof ? -1 : request_fd, requests.waiting.empty() ? kIdleWait : kBlockedWait);
  }
}

}  // namespace thumbmill
