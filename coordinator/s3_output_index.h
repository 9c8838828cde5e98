// S3OutputIndex: what an --out bucket prefix already holds, read once at
// the start of a run, so resume and incremental runs work as with a local
// directory (resume_book.h): every object under the prefix with its size
// (one listing, kept as a hash of each key and its size), and every source's
// manifest record under <prefix>.thumbmill/manifest/ (fetched many at once).
// The uploader writes a source's record after its thumbnails, so a record
// says they were whole when it was written; the listing says they still are.
//
// Limits: a prefix with a million thumbnails is held as ~16 bytes per object
// plus the records; runs writing to one prefix at the same time do not see
// each other's stems (a local directory's stem claims have no S3 form here).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "shared/manifest.h"
#include "shared/output_plan.h"
#include "shared/s3_client.h"
#include "shared/status.h"

namespace thumbmill {

class S3OutputIndex {
 public:
  /// Lists the plan's prefix and loads its records. An error when the
  /// listing fails (a record that cannot be read or parsed is just absent:
  /// its source is made again).
  static Result<S3OutputIndex> Load(S3Client& client, const OutputPlan& plan);

  /// The record of `source`, if one names it.
  std::optional<ManifestRecord> Record(std::string_view source) const;
  /// Whether every output the record names is under the prefix at its size.
  bool OutputsIntact(const ManifestRecord& record) const;
  /// The source whose record owns `stem` (compared without case), if any.
  std::optional<std::string> StemOwner(std::string_view stem) const;

  std::size_t objects() const { return sizes_.size(); }
  std::size_t records() const { return records_.size(); }

 private:
  explicit S3OutputIndex(OutputPlan plan) : plan_(std::move(plan)) {}
  OutputPlan plan_;
  std::unordered_map<std::uint64_t, std::uint64_t> sizes_;  // stable_hash(key) -> size
  std::unordered_map<std::string, ManifestRecord> records_;  // by source
  std::unordered_map<std::string, std::string> stems_;       // lowercased stem -> source
};

}  // namespace thumbmill
