// Output names: where each source's thumbnails go, as
// <out>/<stem>_<size>.<ext>, e.g. thumbnails/cat_200.jpg.
//
// The stem comes from the source's last non-empty path segment (for a URL:
// its path as libcurl parses and decodes it, query and fragment dropped; a
// local path is taken literally), its extension removed ("cat.jpg" -> "cat"), reduced to a safe,
// portable name: ASCII letters, digits, '-', '_' and '.' (every other byte
// becomes '_', runs of '_' collapse), never starting with '.', '_' or '-',
// never ending with '.' or '_', at most 80 bytes, "image" when nothing is
// left. So nothing can be written outside the output directory, whatever the
// URL says.
//
// Two sources with the same stem get distinct names, deterministically: the
// first keeps the plain stem, later ones get "<stem>-<8 hex digits of a hash
// of the source>". Stems are compared ignoring ASCII case, so names stay
// distinct on case-insensitive file systems too.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "shared/options.h"
#include "shared/status.h"

namespace thumbmill {

/// The safe stem of one source (a URL or a local path), before collisions.
std::string sanitize_stem(std::string_view source);

/// One name reduced by the stem rules above (safe bytes, edges, 80 bytes),
/// without dropping an extension; "" when nothing is left.
std::string sanitize_name_part(std::string_view name);

/// The path of `source` as libcurl parses it when it is a URL (escapes
/// kept), else `source` itself (a local path).
std::string source_path(std::string_view source);

/// 64-bit FNV-1a: stable across runs, machines and builds (unlike std::hash).
std::uint64_t stable_hash(std::string_view bytes);

/// The form two stems are compared in: without case, so two names never
/// differ only in case (they would collide on a case-insensitive file
/// system). Every registry of stems keys them so (StemAllocator, the claim
/// files of stem_claims.h, a batch's claims in Redis).
std::string stem_key(std::string_view stem);

/// Asks whether `stem` may go to the source being named (and takes it for
/// that source if so): true: it is that source's; false: another source
/// owns it. An error ends the naming of that source. (The coordinator asks
/// the output directory's StemClaims, so names hold across runs.)
using StemClaimFn = std::function<Result<bool>(const std::string& stem)>;

/// Hands out unique stems over a whole run. Memory: two 64-bit hashes per
/// stem handed out. A source named again (a batch job handed back and taken
/// again) gets the stem it had.
class StemAllocator {
 public:
  /// As Allocate(source), but a candidate stem is also offered to `claim`
  /// and skipped when another source owns it; `preferred` (a stem this
  /// source had before, "" for none) is tried first. Candidates follow the
  /// same sequence as Allocate(source), so a source asks for its earlier
  /// stem again even without `preferred`.
  /// `base`: the first candidate instead of sanitize_stem(source) (a
  /// template without {stem} is keyed by source_hash8, name_template.h).
  Result<std::string> Allocate(std::string_view source, const StemClaimFn& claim,
                               const std::string& preferred = {}, const std::string& base = {});

  /// The stem for `source`: sanitize_stem(source) if no earlier stem took it,
  /// else "<stem>-<low 32 bits of stable_hash(source), 8 lowercase hex>"; if
  /// that is taken too, the hash of source + "#1", "#2", ... until one is
  /// free. The same sequence of sources always yields the same stems.
  std::string Allocate(std::string_view source);

 private:
  std::unordered_map<std::uint64_t, std::uint64_t> taken_;  // stem -> its source (hashes)
};

/// "<stem>_<size label>.<ext>", e.g. "cat_200.jpg" or "cat_200x150.webp".
std::string thumbnail_file_name(std::string_view stem, const SizeSpec& size, Format format);

}  // namespace thumbmill
