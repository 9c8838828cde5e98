#include "shared/stem_claims.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <span>
#include <string>

#include "shared/output_files.h"
#include "shared/output_names.h"
#include "shared/source_list.h"

namespace thumbmill {
namespace {

/// The whole of a small file; an error for anything but a regular file.
Result<std::string> read_small_file(const std::filesystem::path& path, std::size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno("cannot read " + path.string());
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::FromErrno("cannot read " + path.string(), err);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
    if (text.size() > limit) break;
  }
  ::close(fd);
  return text;
}

}  // namespace

StemClaims::StemClaims(std::filesystem::path out_dir) : dir_(out_dir / ".thumbmill" / "stems") {}

Result<bool> StemClaims::Owner(const std::filesystem::path& claim, std::string_view source) const {
  auto text = read_small_file(claim, kMaxSourceLength + 1);
  if (!text.ok()) return text.status();
  return *text == source;
}

Result<bool> StemClaims::Claim(std::string_view stem, std::string_view source) {
  if (!dir_ready_) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) return Status(Code::kIoError, "cannot create " + dir_.string() + ": " + ec.message());
    dir_ready_ = true;
  }
  const auto claim = dir_ / stem_key(stem);
  if (::access(claim.c_str(), F_OK) == 0) return Owner(claim, source);
  // The claim is written whole under a temp name and linked into place:
  // link(2) fails with EEXIST when another run was first, and a reader never
  // sees a claim half written.
  auto file = create_temp_for(claim);
  if (!file.ok()) return file.status();
  const std::filesystem::path temp = file->path();
  Status written = file->Write(std::as_bytes(std::span(source.data(), source.size())));
  if (Status closed = file->Close(); written.ok()) written = std::move(closed);
  if (!written.ok()) {
    ::unlink(temp.c_str());
    return written;
  }
  const int rc = ::link(temp.c_str(), claim.c_str());
  const int err = errno;
  ::unlink(temp.c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return Owner(claim, source);
  return Status::FromErrno("cannot create " + claim.string(), err);
}

}  // namespace thumbmill
