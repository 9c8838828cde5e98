#include "downloader/downloader_loop.h"

#include <unistd.h>

#include <algorithm>
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

constexpr auto kHeartbeatInterval = std::chrono::milliseconds(kHeartbeatIntervalMs);

/// Writes every finished outcome, and a Heartbeat when the loop has work
/// and has said nothing for kHeartbeatInterval. False when the coordinator
/// is gone.
class Sender {
 public:
  explicit Sender(int result_fd) : fd_(result_fd) {}

  bool Send(Fetcher& fetcher, const Requests& requests) {
    for (const FetchOutcome& outcome : fetcher.TakeOutcomes()) {
      if (!write_record(fd_, MessageType::kFetchOutcome, outcome).ok()) return false;
      last_sent_ = Clock::now();
    }
    const bool has_work = fetcher.active() > 0 || !requests.waiting.empty();
    if (!has_work || Clock::now() - last_sent_ < kHeartbeatInterval) return true;
    Heartbeat beat;
    beat.transfers = static_cast<std::uint32_t>(fetcher.active());
    beat.waiting = static_cast<std::uint32_t>(requests.waiting.size());
    if (!write_record(fd_, MessageType::kHeartbeat, beat).ok()) return false;
    last_sent_ = Clock::now();
    return true;
  }

 private:
  using Clock = std::chrono::steady_clock;
  int fd_;
  Clock::time_point last_sent_ = Clock::now();
};

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
  Sender sender(result_fd);
  for (;;) {
    requests.Read();
    while (!requests.waiting.empty() && fetcher.CanStart()) {
      fetcher.Start(requests.waiting.front());
      requests.waiting.pop_front();
    }
    if (!sender.Send(fetcher, requests)) {
      std::fprintf(stderr, "thumbmill downloader: result pipe is closed; stopping\n");
      return 1;  // ~Fetcher gives back what we were filling
    }
    if (requests.eof && requests.waiting.empty() && fetcher.active() == 0) return 0;
    // With transfers under way, wake in time for the next heartbeat.
    const auto wait = !requests.waiting.empty() ? kBlockedWait
                      : fetcher.active() > 0    ? std::min<std::chrono::milliseconds>(kIdleWait, kHeartbeatInterval)
                                                : kIdleWait;
    fetcher.Wait(requests.eof ? -1 : request_fd, wait);
  }
}

}  // namespace thumbmill
