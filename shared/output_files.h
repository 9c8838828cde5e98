// Output files appear whole or not at all.
//
// A thumbnail is written to a hidden temp file beside its final name
// (".<name>.tmp.<pid>"), optionally fsynced, then renamed over the final
// name: rename(2) within one directory is atomic, so a reader sees either
// nothing or the complete file. A process killed before the rename leaves
// only the temp file, which the next run removes (remove_orphan_temp_files).
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

#include "shared/status.h"

namespace thumbmill {

/// Writes `bytes` to `path` atomically. With `durable`, fsyncs the file
/// before the rename and the directory after it. On failure nothing is left
/// behind and the Status names the path and the errno.
Status write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes,
                             bool durable);

/// The temp file a writer with thread id `writer` uses for `path`.
std::filesystem::path output_temp_path(const std::filesystem::path& path, int writer);

/// Whether `name` is one of our temp files (".<name>.tmp.<pid>").
bool is_output_temp_name(std::string_view name);

/// Removes our temp files in `dir` left by processes that were killed.
/// Returns how many were removed.
int remove_orphan_temp_files(const std::filesystem::path& dir);

}  // namespace thumbmill
