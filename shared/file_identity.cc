#include "shared/file_identity.h"

#include <sys/stat.h>

namespace thumbmill {
namespace {

std::filesystem::path normalised(const std::filesystem::path& p) {
  std::error_code ec;
  auto absolute = std::filesystem::absolute(p, ec);
  if (ec) absolute = p;
  auto canonical = std::filesystem::weakly_canonical(absolute, ec);
  return ec ? absolute.lexically_normal() : canonical;
}

}  // namespace

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return normalised(a) == normalised(b);
}

Status refuse_to_overwrite(std::string_view flag, const std::filesystem::path& target,
                           const std::vector<KeptFile>& keep) {
  for (const KeptFile& k : keep) {
    if (k.path.empty() || !same_file(target, k.path)) continue;
    std::string message = std::string(flag) + " " + target.string() + " is " + k.what;
    if (k.path != target) message += " (" + k.path.string() + ")";
    return Status(Code::kInvalidArgument, message + ": refusing to overwrite it");
  }
  return Status::Ok();
}

}  // namespace thumbmill
