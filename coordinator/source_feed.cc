#include "coordinator/source_feed.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>

namespace thumbmill {

void block_signals_in_this_thread() {
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
}

namespace {

/// Bytes read from the list per TryNext that finds no complete line: enough
/// for hundreds of URLs, small enough that the list is never held whole.
constexpr std::size_t kReadChunk = 64 * 1024;

/// A list read through a non-blocking descriptor. Complete lines go to a
/// SourceList over an in-memory stream, so line numbers, byte order marks,
/// comments and CR LF are handled exactly as for any list; the part after
/// the last newline waits for the rest of its line (or the end of the list).
class FdListFeed : public SourceFeed {
 public:
  FdListFeed(int fd, bool owned, int restore_flags, std::string name)
      : fd_(fd), owned_(owned), restore_flags_(restore_flags), name_(std::move(name)) {}
  ~FdListFeed() override {
    if (restore_flags_ >= 0) (void)::fcntl(fd_, F_SETFL, restore_flags_);
    if (owned_) ::close(fd_);
  }

  std::optional<SourceLine> TryNext() override {
    for (;;) {
      if (auto line = parser_.Next()) return line;
      if (eof_ || done_) {
        done_ = true;
        return std::nullopt;
      }
      if (!ReadMore()) return std::nullopt;
    }
  }
  bool done() const override { return done_; }
  int wait_fd() const override { return done_ ? -1 : fd_; }
  const Status& status() const override { return status_; }

  std::optional<std::uint64_t> CountRest() override {
    // Only a regular file: reading it never waits, and its size bounds the
    // work (a pipe could go on for ever).
    struct stat st{};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    const off_t at = ::lseek(fd_, 0, SEEK_CUR);
    if (at < 0 || st.st_size - at > kMaxCountedBytes) return std::nullopt;
    std::uint64_t lines = 0;
    while (TryNext()) ++lines;
    if (!done_ || !status_.ok()) return std::nullopt;
    return lines;
  }

 private:
  /// The most of a list CountRest reads (a fraction of a second to parse).
  static constexpr off_t kMaxCountedBytes = 64 << 20;

  /// Moves what the descriptor has now into the parser's stream. False when
  /// nothing can be had now (would block) or reading failed.
  bool ReadMore() {
    char chunk[kReadChunk];
    ssize_t n;
    do n = ::read(fd_, chunk, sizeof chunk);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      status_ = Status::FromErrno("reading " + name_);
      done_ = true;
      return false;
    }
    std::string complete;
    if (n == 0) {
      eof_ = true;
      complete = std::move(partial_);  // a last line without a newline
      partial_.clear();
    } else {
      std::string_view data(chunk, static_cast<std::size_t>(n));
      if (skipping_) {  // the rest of a line already too long: up to its newline
        const auto newline = data.find('\n');
        if (newline == std::string_view::npos) return true;
        data.remove_prefix(newline);
        skipping_ = false;
      }
      partial_.append(data);
      const auto last_newline = partial_.rfind('\n');
      if (last_newline != std::string::npos) {
        complete = partial_.substr(0, last_newline + 1);
        partial_.erase(0, last_newline + 1);
      }
      // A line past kMaxLineBytes is kept only that far (the parser calls it
      // too long); the rest of it is dropped as it arrives.
      if (partial_.size() > kMaxLineBytes) {
        partial_.resize(kMaxLineBytes + 1);
        skipping_ = true;
      }
      if (complete.empty()) return true;
    }
    // The parser consumed everything before: start its stream afresh.
    lines_.clear();
    lines_.str(std::move(complete));
    return true;
  }

  int fd_;
  bool owned_;
  int restore_flags_;  // -1: nothing to restore
  std::string name_;
  std::istringstream lines_;
  SourceList parser_{lines_};
  std::string partial_;  // at most kMaxLineBytes + 1 bytes
  bool skipping_ = false;  // dropping the rest of a line too long
  bool eof_ = false;
  bool done_ = false;
  Status status_;
};

}  // namespace

Result<std::unique_ptr<SourceFeed>> open_fd_feed(UniqueFd fd, std::string name) {
  if (Status st = set_nonblocking(fd.get()); !st.ok()) return st;
  return std::unique_ptr<SourceFeed>(new FdListFeed(fd.release(), true, -1, std::move(name)));
}

Result<std::unique_ptr<SourceFeed>> open_list_feed(const std::string& path) {
  if (path == "-") {
    const int flags = ::fcntl(STDIN_FILENO, F_GETFL);
    if (flags < 0) return Status::FromErrno("cannot read standard input");
    if (::fcntl(STDIN_FILENO, F_SETFL, flags | O_NONBLOCK) < 0)
      return Status::FromErrno("cannot read standard input");
    return std::unique_ptr<SourceFeed>(new FdListFeed(STDIN_FILENO, false, flags, "standard input"));
  }
  const std::string context = "cannot open source list " + path;
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::FromErrno(context);
  struct stat st{};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::FromErrno(context, EISDIR);
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    const Status s = Status::FromErrno(context);
    ::close(fd);
    return s;
  }
  return std::unique_ptr<SourceFeed>(new FdListFeed(fd, true, -1, path));
}

}  // namespace thumbmill
