// OutputPlan: the one place that knows where a source's thumbnails go, for
// every process that writes, reports or cleans them up (the worker writing
// them, the coordinator reporting them, recording them in the manifest and
// removing what a killed worker left).
//
// A source's outputs are <out>/<stem>_<size label>.<ext>, one per requested
// size in the order given (output_names.h); each is written through a
// hidden temp file beside it (output_files.h), whose name carries the
// writer's thread id and a random part, and renamed into place.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "shared/options.h"

namespace thumbmill {

class OutputPlan {
 public:
  OutputPlan(std::filesystem::path out_dir, std::vector<SizeSpec> sizes, Format format);
  explicit OutputPlan(const Options& options) : OutputPlan(options.out_dir, options.sizes, options.format) {}

  const std::filesystem::path& out_dir() const { return out_dir_; }
  /// How many outputs each source has (one per size).
  std::size_t count() const { return sizes_.size(); }

  /// The file name of output `i` of `stem`, e.g. "cat_200.jpg".
  /// REQUIRES: i < count().
  std::string file_name(std::string_view stem, std::size_t i) const;
  /// <out>/<file_name>.
  std::filesystem::path final_path(std::string_view stem, std::size_t i) const;
  /// Removes the temp files `writer` (a thread id) may have left for `stem`
  /// (a writer killed mid-write). Their names hold a random part, so this
  /// reads the output directory once.
  void RemoveTemps(std::string_view stem, long writer) const;

 private:
  std::filesystem::path out_dir_;
  std::vector<SizeSpec> sizes_;
  Format format_;
};

}  // namespace thumbmill
