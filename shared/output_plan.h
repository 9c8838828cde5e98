// OutputPlan: the one place that knows where a source's thumbnails go, for
// every process that writes, reports or cleans them up (the worker writing
// them, the coordinator reporting them, recording them in the manifest and
// removing what a killed worker left, the uploader storing them).
//
// A source has sizes x formats outputs, sizes-major: for --sizes 64,200
// --format webp,jpeg, output 0 is 64 webp, 1 is 64 jpeg, 2 is 200 webp, 3 is
// 200 jpeg. Output i is named by the --name template (name_template.h;
// default <stem>_<size label>.<ext>) relative to <out>, and may lie in
// subdirectories, created as needed (output_files.h: write_output_file).
// Each is written through a hidden temp file beside it, whose name carries
// the writer's thread id and a random part, and renamed into place. With
// an --out bucket they are the objects <prefix><name>, stored whole by one
// PUT each (no temp objects).
//
// A template with {width} or {height} names an output only once it is made:
// callers pass what was made (a worker from its thumbnails, the coordinator
// from the outcome record, resume from the manifest record).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "shared/name_template.h"
#include "shared/options.h"
#include "shared/s3_location.h"

namespace thumbmill {

/// Which source an output belongs to: its unique stem (the coordinator's
/// key) and its location as listed.
struct SourceNames {
  std::string_view stem;
  std::string_view source;
};

class OutputPlan {
 public:
  OutputPlan(std::filesystem::path out_dir, std::vector<SizeSpec> sizes, std::vector<Format> formats,
             std::string_view name_template = NameTemplate::kDefault);
  explicit OutputPlan(const Options& options);

  const std::filesystem::path& out_dir() const { return out_dir_; }
  /// How many outputs each source has (sizes x formats).
  std::size_t count() const { return sizes_.size() * formats_.size(); }
  /// The size and format of output i. REQUIRES: i < count().
  const SizeSpec& size(std::size_t i) const { return sizes_.at(i / formats_.size()); }
  Format format(std::size_t i) const { return formats_.at(i % formats_.size()); }

  /// The template in force: --name, with "_{hash}" added when it had
  /// neither {stem} nor {hash} (hash_added()).
  const NameTemplate& name_template() const { return name_; }
  bool hash_added() const { return hash_added_; }
  /// Whether names need what was made ({width}, {height}).
  bool names_need_dimensions() const;
  /// Whether outputs may lie in subdirectories of --out.
  bool has_directories() const;
  /// The first stem StemAllocator tries for `source`: "" (sanitize_stem)
  /// when the template has {stem}, else source_hash8 (the key is {hash}).
  std::string stem_base(std::string_view source) const;

  /// The name of output `i` relative to --out, e.g. "cat_200.jpg" or
  /// "200/cat.webp". `width`/`height`: what was made (needed only when
  /// names_need_dimensions()). REQUIRES: i < count().
  std::string file_name(SourceNames who, std::size_t i, int width = 0, int height = 0) const;
  /// <out>/<file_name>.
  std::filesystem::path final_path(SourceNames who, std::size_t i, int width = 0, int height = 0) const;

  /// Whether the outputs go to a bucket (--out s3://...).
  bool to_s3() const { return !bucket_.empty(); }
  /// Where output i ends, as the report names it: final_path, or
  /// "s3://bucket/prefix/<file_name>".
  std::string location(SourceNames who, std::size_t i, int width = 0, int height = 0) const;
  /// The object of output i. REQUIRES: to_s3().
  S3Location object(SourceNames who, std::size_t i, int width = 0, int height = 0) const;
  /// The object of a file name under the prefix (a record, a listing entry).
  S3Location object_named(std::string_view name) const;
  /// The prefix's key ("" or ending in '/'). REQUIRES: to_s3().
  const std::string& prefix() const { return prefix_; }
  const std::string& bucket() const { return bucket_; }
  /// Content-Type of output i.
  std::string_view content_type(std::size_t i) const;
  /// Removes the temp files `writer` (a thread id) may have left for the
  /// source (a writer killed mid-write). Their names hold a random part, so
  /// this reads each of the source's output directories once; with
  /// {width}/{height} every temp of that writer there goes (a dead writer's
  /// temps are all orphans).
  void RemoveTemps(SourceNames who, long writer) const;

 private:
  std::filesystem::path out_dir_;
  std::vector<SizeSpec> sizes_;
  std::vector<Format> formats_;
  NameTemplate name_;
  bool hash_added_ = false;
  std::string bucket_;  // "" : a local directory
  std::string prefix_;
};

}  // namespace thumbmill
