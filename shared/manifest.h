// Manifest: the record, kept in the output directory, of which source made
// which thumbnails, with which options, from which version of the source.
// Resume trusts only this: a source is done when its record says these
// options made these files (still on disk, as large as recorded) from a
// source that has not changed since.
//
// One small JSON file per source, <out>/.thumbmill/manifest/<h:2>/<h>.json
// where h is 16 hex digits of stable_hash(source), each replaced whole by an
// atomic rename (output_files.h): runs writing into one directory at the
// same time never lose each other's records, and a record is never read half
// written. A record names its source in full; another source's record under
// the same hash is ignored (and would be replaced).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/options.h"
#include "shared/status.h"

namespace thumbmill {

/// One output file a source owns, by name within the output directory.
struct ManifestOutput {
  std::string name;  // "cat_200.jpg"
  int width = 0;
  int height = 0;
  std::uint64_t bytes = 0;
  bool operator==(const ManifestOutput&) const = default;
};

/// What identifies the version of a source that was made: for HTTP its
/// ETag and Last-Modified (either may be empty), for a local file its size
/// and modification time.
struct SourceValidator {
  std::string etag;
  std::string last_modified;
  bool has_file_stat = false;
  std::uint64_t file_size = 0;
  std::int64_t mtime_ns = 0;

  /// Whether an HTTP validator is known (a conditional request can be made).
  bool has_http() const { return !etag.empty() || !last_modified.empty(); }
  bool operator==(const SourceValidator&) const = default;
};

struct ManifestRecord {
  std::string source;   // the URL, or the local path, as fetched
  std::string stem;
  std::string options;  // options_fingerprint() of the run that made it
  std::vector<ManifestOutput> outputs;
  SourceValidator validator;
  bool operator==(const ManifestRecord&) const = default;
};

/// What in Options decides the bytes of the outputs: sizes, format,
/// quality and the image options that are not at their default, e.g.
/// "v2;sizes=32,64,200;format=jpeg;quality=85;fit=cover". Equal
/// fingerprints: the same files would be made from the same source.
std::string options_fingerprint(const Options& options);

/// Size and modification time of the local file `path`.
Result<SourceValidator> local_file_validator(const std::filesystem::path& path);

class Manifest {
 public:
  /// Records live under `out_dir`/.thumbmill/manifest. With `durable`,
  /// each record is fsynced (with its directory) before it counts.
  explicit Manifest(std::filesystem::path out_dir, bool durable = false);

  /// The record of `source`; nullopt when there is none, or it cannot be
  /// read or parsed (a source without a usable record is simply redone).
  std::optional<ManifestRecord> Load(std::string_view source) const;
  /// Writes (or replaces) the record of `record.source`.
  Status Store(const ManifestRecord& record) const;
  /// Removes the record of `source`, if any (its outputs are no longer
  /// known to be whole).
  Status Remove(std::string_view source) const;

  /// Whether every output of `record` is in the output directory with its
  /// recorded size.
  bool OutputsIntact(const ManifestRecord& record) const;

  std::filesystem::path RecordPath(std::string_view source) const;
  const std::filesystem::path& out_dir() const { return out_dir_; }

 private:
  std::filesystem::path out_dir_;
  std::filesystem::path dir_;
  bool durable_;
};

/// Removes temp files (of record and claim writes) that killed runs left
/// under `out_dir`/.thumbmill, by the rule of remove_orphan_temp_files.
/// Returns how many were removed.
int remove_orphan_manifest_temps(const std::filesystem::path& out_dir,
                                 std::chrono::seconds grace = std::chrono::seconds(0));

/// Where the record of `source` lives relative to the output directory or
/// prefix: ".thumbmill/manifest/<h:2>/<h>.json". The same name in a bucket.
std::string manifest_record_name(std::string_view source);

/// The JSON text of a record, and back (kInvalidArgument when malformed).
std::string manifest_record_to_json(const ManifestRecord& record);
Result<ManifestRecord> manifest_record_from_json(std::string_view text);

}  // namespace thumbmill
