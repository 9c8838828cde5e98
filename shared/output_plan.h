// OutputPlan: the one place that knows where a source's thumbnails go, for
// every process that writes, reports or cleans them up (the worker writing
// them, the coordinator reporting them, recording them in the manifest and
// removing what a killed worker left).
//
// A source's outputs are <out>/<stem>_<size label>.<ext>, one per requested
// size in the order given (output_names.h); each is written through a
// hidden temp file beside it (output_files.h), whose name carries the
// writer's thread id and a random part, and renamed into place. With an
// --out bucket they are the objects <prefix><stem>_<size label>.<ext>, under
// the same names, stored whole by one PUT each (no temp objects).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "shared/options.h"
#include "shared/s3_location.h"

namespace thumbmill {

class OutputPlan {
 public:
  OutputPlan(std::filesystem::path out_dir, std::vector<SizeSpec> sizes, Format format);
  explicit OutputPlan(const Options& options);

  const std::filesystem::path& out_dir() const { return out_dir_; }
  /// How many outputs each source has (one per size).
  std::size_t count() const { return sizes_.size(); }

  /// The file name of output `i` of `stem`, e.g. "cat_200.jpg".
  /// REQUIRES: i < count().
  std::string file_name(std::string_view stem, std::size_t i) const;
  /// <out>/<file_name>.
  std::filesystem::path final_path(std::string_view stem, std::size_t i) const;

  /// Whether the outputs go to a bucket (--out s3://...).
  bool to_s3() const { return !bucket_.empty(); }
  /// Where output i ends, as the report names it: final_path, or
  /// "s3://bucket/prefix/<file_name>".
  std::string location(std::string_view stem, std::size_t i) const;
  /// The object of output i. REQUIRES: to_s3().
  S3Location object(std::string_view stem, std::size_t i) const;
  /// The object of a file name under the prefix (a record, a listing entry).
  S3Location object_named(std::string_view name) const;
  /// The prefix's key ("" or ending in '/'). REQUIRES: to_s3().
  const std::string& prefix() const { return prefix_; }
  const std::string& bucket() const { return bucket_; }
  /// Content-Type of every output.
  std::string_view content_type() const;
  /// Removes the temp files `writer` (a thread id) may have left for `stem`
  /// (a writer killed mid-write). Their names hold a random part, so this
  /// reads the output directory once.
  void RemoveTemps(std::string_view stem, long writer) const;

 private:
  std::filesystem::path out_dir_;
  std::vector<SizeSpec> sizes_;
  Format format_;
  std::string bucket_;  // "" : a local directory
  std::string prefix_;
};

}  // namespace thumbmill
