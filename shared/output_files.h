// Output files appear whole or not at all, and only where they belong.
//
// A thumbnail is written to a hidden temp file beside its final name, then
// renamed over it: rename(2) within one directory is atomic, so a reader sees
// either nothing or the complete file, and a symlink someone left at the
// final name is replaced, never followed.
//
// The temp name is ".<final name>.tmp.<writer>.<random>": <writer> is the
// writing thread's id (a worker's pid in the process build), so whoever
// knows that a writer died can find what it left; <random> is 16 lowercase
// hex digits from getrandom(2), so nobody can plant a name in advance. The
// temp file is created with O_CREAT | O_EXCL | O_NOFOLLOW: a name that exists
// (a symlink, a hard link to someone's file, a guess that came true) is never
// opened; another random name is tried instead. Our bytes are written by us,
// not by a libvips saver, so the real extension need not come last.
//
// This file is the one place that knows the pattern: names are made by
// output_temp_path and recognised by parse_output_temp_name, and the two
// clean-ups remove only names that parse, so a user's ".thesis.tmp.final" in
// the output directory is never touched.
#pragma once

#include <cstddef>
#include <chrono>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/checked_file.h"
#include "shared/status.h"

namespace thumbmill {

/// Writes `bytes` to `path` atomically. With `durable`, fsyncs the file
/// before the rename and the directory after it. On failure nothing is left
/// behind and the Status names the path and the errno.
Status write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes,
                             bool durable);

/// Writes `bytes` to `root`/`relative` atomically, as write_file_atomically,
/// creating the directories of `relative` on the way (mode 0777 less the
/// umask; with `durable`, each new one's parent is fsynced). Each directory is opened relative to the one before with
/// O_NOFOLLOW | O_DIRECTORY, and the temp file is created and renamed
/// relative to the last: a symlink planted anywhere below `root` is never
/// followed, so nothing is written outside it. A component that is empty,
/// "." or ".." is refused (kInvalidArgument).
Status write_output_file(const std::filesystem::path& root, std::string_view relative,
                         std::span<const std::byte> bytes, bool durable);

/// Creates a temp file for `path` under a fresh temp name of this thread
/// (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0644 less the umask), never opening a
/// name that exists. The caller writes it, closes it, and renames or links
/// it into place, or unlinks it.
Result<CheckedFile> create_temp_for(const std::filesystem::path& path);

/// A fresh temp name for writer `writer` (> 0) writing `path`: a new random
/// part on every call.
std::filesystem::path output_temp_path(const std::filesystem::path& path, long writer);

/// The parts of one of our temp names.
struct OutputTempName {
  std::string final_name;  // the file it becomes, e.g. "cat_200.jpg"
  long writer = 0;
};

/// The parts of `name` (a file name, no directory) when it is exactly one of
/// ours: ".<final>.tmp.<writer>.<16 lowercase hex>", with <final> not empty
/// and not starting with '.', <writer> a decimal number > 0 without leading
/// zeros. Anything else (".thesis.tmp.final", ".x.tmp.12") is not ours.
std::optional<OutputTempName> parse_output_temp_name(std::string_view name);

/// Whether `name` is one of our temp names (parse_output_temp_name succeeds).
bool is_output_temp_name(std::string_view name);

/// Removes our temp files in `dir` whose writer is no longer running (left by
/// processes that were killed). Only regular files of exactly our pattern
/// are touched. With `recursive`, subdirectories too (not followed through
/// symlinks; .thumbmill skipped: remove_orphan_manifest_temps has it).
/// A file changed less than `grace` ago is left even when no writer of that
/// id runs here: nodes of a batch on other machines may share the directory
/// (a network file system), and their writers are not ours to see.
/// Returns how many were removed.
int remove_orphan_temp_files(const std::filesystem::path& dir, bool recursive = false,
                             std::chrono::seconds grace = std::chrono::seconds(0));

/// Removes the temp files writer `writer` left in `dir` for any of
/// `final_names` (a worker known to be dead), or for any name when
/// `final_names` is empty. Reads the directory once.
/// Returns how many were removed.
int remove_writer_temp_files(const std::filesystem::path& dir, const std::vector<std::string>& final_names,
                             long writer);

}  // namespace thumbmill
