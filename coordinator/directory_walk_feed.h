// The images under a directory given on the command line, found by walking
// it as the run goes (std::filesystem::recursive_directory_iterator: one open
// directory per level, so a tree of a million files is never held whole).
//
// Taken: regular files whose name has one of the walk's extensions (--ext,
// shared/image_extensions.h), each a local source (kFile) at its path as
// walked ("photos/2026/cat.jpg" under "photos/"), numbered 1, 2, ... in walk
// order. Within a directory the order is the file system's. Not taken:
//  - symbolic links to directories: never followed, so nothing is walked
//    twice and the walk stays inside the tree;
//  - symbolic links to files that resolve outside the tree (or nowhere):
//    skipped, and counted on stderr when the walk ends;
//  - the skip directory (the --out directory, when it lies inside the tree),
//    so a second run does not make thumbnails of thumbnails;
//  - FIFOs, sockets and devices, whatever their names.
// A subdirectory that cannot be read is one failed source naming it and the
// reason; the walk goes on beside it. An error that ends the iterator ends
// the walk with one failed source saying so.
//
// Never blocks for long: TryNext looks at most kWalkStepsPerTry entries, and
// while the walk is not done wait_fd() is a descriptor that is always
// readable, so the loop's poll returns at once and asks again.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/source_feed.h"

namespace thumbmill {

/// Directory entries looked at per TryNext at most.
inline constexpr int kWalkStepsPerTry = 256;

struct WalkSettings {
  /// Names taken, by extension (lowercase, without dots).
  std::vector<std::string> extensions;
  /// Never walked into, if it exists when the walk starts (empty: none).
  std::filesystem::path skip_dir;
};

/// Starts walking `root` (a directory, or a symbolic link to one). A root
/// that cannot be opened is a kIoError naming it and the reason.
Result<std::unique_ptr<SourceFeed>> open_walk_feed(const std::filesystem::path& root, WalkSettings settings);

}  // namespace thumbmill
