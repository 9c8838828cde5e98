#include "coordinator/directory_walk_feed.h"

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "shared/image_extensions.h"

namespace thumbmill {
namespace fs = std::filesystem;
namespace {

struct DirId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool valid = false;
  int error = 0;  // when !valid: why (ENOTDIR when it is no directory now)
};

DirId dir_id(const fs::path& path) {
  struct stat st{};
  if (path.empty()) return {0, 0, false, ENOENT};
  if (::stat(path.c_str(), &st) != 0) return {0, 0, false, errno};
  if (!S_ISDIR(st.st_mode)) return {0, 0, false, ENOTDIR};
  return {st.st_dev, st.st_ino, true, 0};
}

/// Whether `target` (canonical) is `root` (canonical) or lies under it.
bool inside(const std::string& root, const std::string& target) {
  if (root == "/") return true;
  return target.size() > root.size() && target.compare(0, root.size(), root) == 0 && target[root.size()] == '/';
}

class WalkFeed : public SourceFeed {
 public:
  WalkFeed(fs::path root, std::string canonical_root, fs::recursive_directory_iterator it, UniqueFd ready,
           WalkSettings settings)
      : root_(std::move(root)),
        canonical_root_(std::move(canonical_root)),
        it_(std::move(it)),
        ready_(std::move(ready)),
        settings_(std::move(settings)) {}

  std::optional<SourceLine> TryNext() override {
    if (pending_) return std::exchange(pending_, std::nullopt);
    if (done_) return std::nullopt;
    if (!started_) {
      // Now, not when opened: the coordinator creates --out after its
      // start-up checks.
      skip_ = dir_id(settings_.skip_dir);
      started_ = true;
    }
    for (int steps = 0; steps < kWalkStepsPerTry && it_ != fs::recursive_directory_iterator(); ++steps) {
      std::optional<SourceLine> line = Look(*it_);
      std::error_code ec;
      const fs::path where = it_->path();
      it_.increment(ec);
      if (ec) {
        // The iterator is at its end now: say where the walk stopped.
        pending_ = Failed(where, "the walk of " + root_.string() + " stopped at " + where.string() + ": " +
                                     ec.message());
      }
      if (line) return line;
      if (pending_) return std::exchange(pending_, std::nullopt);
    }
    if (it_ == fs::recursive_directory_iterator()) Finish();
    return std::nullopt;
  }
  bool done() const override { return done_; }
  int wait_fd() const override { return done_ ? -1 : ready_.get(); }
  const Status& status() const override { return status_; }

 private:
  /// The source `entry` is, if it is one.
  std::optional<SourceLine> Look(const fs::directory_entry& entry) {
    std::error_code ec;
    if (entry.is_symlink(ec)) return LookAtLink(entry);
    if (entry.is_directory(ec)) {
      const DirId id = dir_id(entry.path());
      if (!id.valid) {  // gone or replaced since it was listed: nothing to walk
        it_.disable_recursion_pending();
        if (id.error == ENOENT || id.error == ENOTDIR) return std::nullopt;
        return Failed(entry.path(), "cannot read directory " + entry.path().string() + ": " + std::strerror(id.error));
      }
      if (skip_.valid && id.dev == skip_.dev && id.ino == skip_.ino) {
        it_.disable_recursion_pending();
        return std::nullopt;
      }
      if (::access(entry.path().c_str(), R_OK | X_OK) != 0) {
        it_.disable_recursion_pending();
        return Failed(entry.path(), "cannot read directory " + entry.path().string() + ": " + std::strerror(errno));
      }
      return std::nullopt;
    }
    if (!entry.is_regular_file(ec) || !has_extension(entry.path().native(), settings_.extensions)) return std::nullopt;
    return Source(entry.path());
  }

  /// A link to a directory is never followed (the iterator does not); a
  /// link to a file is taken when its target is a regular file in the tree.
  std::optional<SourceLine> LookAtLink(const fs::directory_entry& entry) {
    if (!has_extension(entry.path().native(), settings_.extensions)) return std::nullopt;
    std::error_code ec;
    const fs::path target = fs::canonical(entry.path(), ec);
    if (!ec && fs::is_directory(target, ec)) return std::nullopt;
    if (ec || !fs::is_regular_file(target, ec) || !inside(canonical_root_, target.native())) {
      ++links_refused_;
      return std::nullopt;
    }
    return Source(entry.path());
  }

  SourceLine Source(const fs::path& path) {
    SourceLine line;
    line.line_number = ++taken_;
    line.text = line.display = line.location = path.string();
    line.kind = SourceKind::kFile;
    if (line.location.size() > kMaxSourceLength)
      line.status = Status(Code::kInvalidArgument,
                           "path longer than " + std::to_string(kMaxSourceLength) + " bytes");
    return line;
  }

  SourceLine Failed(const fs::path& path, std::string message) {
    SourceLine line = Source(path);
    line.status = Status(Code::kIoError, std::move(message));
    return line;
  }

  void Finish() {
    done_ = true;
    if (links_refused_)
      std::fprintf(stderr, "thumbmill: %llu symbolic link%s under %s skipped: %s out of the tree or nowhere\n",
                   static_cast<unsigned long long>(links_refused_), links_refused_ == 1 ? "" : "s",
                   root_.c_str(), links_refused_ == 1 ? "it leads" : "they lead");
  }

  fs::path root_;
  std::string canonical_root_;
  fs::recursive_directory_iterator it_;
  UniqueFd ready_;  // an eventfd that is never read: always readable
  WalkSettings settings_;
  DirId skip_;
  bool started_ = false;
  bool done_ = false;
  std::optional<SourceLine> pending_;
  std::uint64_t taken_ = 0;
  std::uint64_t links_refused_ = 0;
  Status status_;
};

}  // namespace

Result<std::unique_ptr<SourceFeed>> open_walk_feed(const fs::path& root, WalkSettings settings) {
  const std::string context = "cannot walk " + root.string();
  std::error_code ec;
  const fs::path canonical = fs::canonical(root, ec);
  if (ec) return Status(Code::kIoError, context + ": " + ec.message());
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return Status(Code::kIoError, context + ": " + ec.message());
  UniqueFd ready(::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!ready.valid()) return Status::FromErrno(context);
  return std::unique_ptr<SourceFeed>(
      new WalkFeed(root, canonical.string(), std::move(it), std::move(ready), std::move(settings)));
}

}  // namespace thumbmill
