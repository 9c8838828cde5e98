// StemClaims: which source owns which output stem in an output directory,
// across runs and between runs writing into it at the same time.
//
// A stem is owned by the first source that claims it, for good: its claim is
// the file <out>/.thumbmill/stems/<stem, lowercased> holding the source (its
// URL or path), put in place with link(2) from a complete temp file, so it
// appears whole or not at all and two runs can never both create it. A stem
// whose claim names another source is never handed to this one, in this or
// any later run; one whose claim names this source is this source's again.
// Claims are compared without case, like stems (output_names.h).
#pragma once

#include <filesystem>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

class StemClaims {
 public:
  /// Claims live under `out_dir`/.thumbmill/stems (created when first needed).
  explicit StemClaims(std::filesystem::path out_dir);

  /// Claims `stem` for `source`. true: `source` owns it (now or since an
  /// earlier run); false: another source does. An error (the directory
  /// cannot be created or read) names the path.
  Result<bool> Claim(std::string_view stem, std::string_view source);

  /// <out>/.thumbmill/stems
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Result<bool> Owner(const std::filesystem::path& claim, std::string_view source) const;

  std::filesystem::path dir_;
  bool dir_ready_ = false;
};

}  // namespace thumbmill
