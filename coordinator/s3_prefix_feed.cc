#include "coordinator/s3_prefix_feed.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "shared/fd_io.h"
#include "shared/s3_client.h"

namespace thumbmill {
namespace {

/// Tries of one page before the listing fails: connection errors, timeouts
/// and 5xx pass more often than not.
constexpr int kPageTries = 4;

/// A key a list line carries unchanged.
bool fits_a_line(std::string_view key) {
  if (key.empty() || std::isspace(static_cast<unsigned char>(key.front())) ||
      std::isspace(static_cast<unsigned char>(key.back())))
    return false;
  return std::none_of(key.begin(), key.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

class S3PrefixFeed : public SourceFeed {
 public:
  S3PrefixFeed(std::unique_ptr<SourceFeed> lines, UniqueFd write_end, const S3Settings& settings, S3Location prefix,
               std::vector<std::string> extensions)
      : lines_(std::move(lines)),
        extensions_(std::move(extensions)),
        thread_([this, fd = std::move(write_end), settings, prefix = std::move(prefix)]() mutable {
          block_signals_in_this_thread();
          List(std::move(fd), settings, prefix);
        }) {}
  ~S3PrefixFeed() override {
    lines_.reset();  // closes the read end: the lister's next write fails, and it ends
    thread_.join();
  }

  std::optional<SourceLine> TryNext() override { return lines_->TryNext(); }
  bool done() const override { return lines_->done(); }
  int wait_fd() const override { return lines_->wait_fd(); }
  const Status& status() const override {
    std::lock_guard guard(mutex_);
    return listing_.ok() ? lines_->status() : listing_;
  }

 private:
  void List(UniqueFd out, const S3Settings& settings, const S3Location& prefix);
  void Fail(Status status) {
    std::lock_guard guard(mutex_);
    listing_ = std::move(status);
  }

  std::unique_ptr<SourceFeed> lines_;
  const std::vector<std::string> extensions_;  // before thread_: the lister reads it
  mutable std::mutex mutex_;
  Status listing_;  // set before the write end closes
  std::thread thread_;
};

/// Keys per listing page: S3's 1000, or (test-only, read only when set)
/// $THUMBMILL_TEST_S3_LIST_PAGE, so a small prefix spans several pages.
int page_keys() {
  const char* test = std::getenv("THUMBMILL_TEST_S3_LIST_PAGE");
  const int keys = test ? std::atoi(test) : 0;
  return keys > 0 && keys <= 1000 ? keys : 1000;
}

void S3PrefixFeed::List(UniqueFd out, const S3Settings& settings, const S3Location& prefix) {
  S3Client client(settings);
  const int max_keys = page_keys();
  std::string token;
  std::uint64_t skipped = 0;
  do {
    Result<S3ListPage> page = Status(Code::kInternal, "not listed");
    for (int tries = 1;; ++tries) {
      page = client.ListPage(prefix.bucket, prefix.key, token, max_keys);
      const Code code = page.ok() ? Code::kOk : page.status().code();
      const bool passing = code == Code::kNetwork || code == Code::kTimeout ||
                           (code == Code::kHttpStatus && page.status().message().find("HTTP 5") != std::string::npos);
      if (page.ok() || !passing || tries >= kPageTries) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << tries));  // the lister's own thread
    }
    if (!page.ok()) return Fail(page.status());
    for (const S3Object& object : page->objects) {
      if (!has_extension(object.key, extensions_)) continue;
      if (!fits_a_line(object.key)) {
        ++skipped;
        continue;
      }
      const std::string line = S3Location{prefix.bucket, object.key}.url() + "\n";
      if (!write_all(out.get(), line.data(), line.size()).ok()) return;  // the feed is gone
    }
    token = page->truncated ? page->next_token : "";
  } while (!token.empty());
  if (skipped)
    std::fprintf(stderr, "thumbmill: %llu keys under %s skipped: a control character or blanks at an end\n",
                 static_cast<unsigned long long>(skipped), prefix.url().c_str());
}

}  // namespace

Result<std::unique_ptr<SourceFeed>> open_s3_prefix_feed(const S3Settings& settings, const S3Location& prefix,
                                                        std::vector<std::string> extensions) {
  auto pipe = make_pipe();
  if (!pipe.ok()) return pipe.status();
  UniqueFd read_end(pipe->read_fd);
  UniqueFd write_end(pipe->write_fd);
  auto lines = open_fd_feed(std::move(read_end), prefix.url());
  if (!lines.ok()) return lines.status();
  return std::unique_ptr<SourceFeed>(
      new S3PrefixFeed(std::move(lines.value()), std::move(write_end), settings, prefix, std::move(extensions)));
}

}  // namespace thumbmill
