// Whether two names are one file, and refusing to overwrite a file a run
// must keep (the list it reads, the output directory; later the manifest)
// under another name: "--report urls.txt", a symlink or a hard link to it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"

namespace thumbmill {

/// Whether `a` and `b` name the same file: the same device and inode when
/// both exist (so symlinks and hard links are seen through), otherwise the
/// same absolute path once normalised (symlinks in the existing part of each
/// path resolved).
bool same_file(const std::filesystem::path& a, const std::filesystem::path& b);

/// A file that must not be overwritten, and how a message names it.
struct KeptFile {
  std::string what;  // "the list", "the output directory"
  std::filesystem::path path;
};

/// kInvalidArgument when `target` (the value of option `flag`) is the same
/// file as any of `keep`; ok otherwise. Call before opening `target`.
Status refuse_to_overwrite(std::string_view flag, const std::filesystem::path& target,
                           const std::vector<KeptFile>& keep);

}  // namespace thumbmill
