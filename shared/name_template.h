// NameTemplate: --name, the pattern of every output's name under --out,
// e.g. "{stem}_{size}.{ext}" (the default: cat_200.jpg) or
// "{size}/{stem}.{ext}" (200/cat.jpg) or "{dir}/{stem}_{size}.{ext}".
//
// Placeholders:
//   {stem}    the source's unique stem (output_names.h)
//   {size}    the size as asked: "200" or "200x150"
//   {width}   {height}  what was made (known after resizing; only in the
//             last component, so a source's directories are known before)
//   {ext}     jpg, webp, png, avif
//   {hash}    8 hex digits of stable_hash(source); when the template has no
//             {stem}, the source's unique key instead: the same 8 digits
//             unless another source took them (then "-" and 8 more)
//   {dir}     the source's directories (a URL's path, a local path's
//             directories), each reduced like a stem; "" when none
// Literal text may hold [A-Za-z0-9._-] and '/' (a directory). What a
// template makes is always a relative path inside --out: no component is
// empty (an empty {dir} leaves none), ".", "..", or starts with '.' (hidden
// names are thumbmill's own: temp files, .thumbmill).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/options.h"
#include "shared/status.h"

namespace thumbmill {

enum class Placeholder { kStem, kSize, kWidth, kHeight, kExt, kHash, kDir };

/// The values one output's name is made from.
struct NameValues {
  std::string_view stem;    // the unique key the coordinator claimed
  std::string_view source;  // the URL or path, as in the list
  SizeSpec size;
  Format format = Format::kJpeg;
  int width = 0;   // what was made (0: not known, e.g. before resizing)
  int height = 0;
};

class NameTemplate {
 public:
  /// The default, "{stem}_{size}.{ext}".
  static constexpr std::string_view kDefault = "{stem}_{size}.{ext}";

  /// Parses `text`; kInvalidArgument naming the problem ("--name: unknown
  /// placeholder {foo}", a '{' without '}', a byte outside the literal set,
  /// a leading '/', a component "..", "." or starting with '.', {width} or
  /// {height} in a directory, two placeholders with nothing between them or
/// without one of "._-/" between them).
  static Result<NameTemplate> Parse(std::string_view text);

  /// This template made collision-free for `sizes` x `formats` outputs a
  /// source: without {stem} and {hash}, "_{hash}" is added (before a final
  /// ".{ext}", else at the end). kInvalidArgument when one source's outputs
  /// would share a name: more than one size and no {size}, more than one
  /// format and no {ext}.
  Result<NameTemplate> ForOutputs(std::size_t sizes, std::size_t formats) const;

  bool uses(Placeholder p) const;
  /// Whether the stem is the source's key ({stem} in the template); else
  /// {hash} is (ForOutputs guarantees one of them).
  bool keyed_by_stem() const { return uses(Placeholder::kStem); }
  const std::string& text() const { return text_; }

  /// The relative path of one output, e.g. "200/cat.jpg".
  std::string Expand(const NameValues& values) const;

 private:
  struct Piece {
    bool is_placeholder = false;
    Placeholder placeholder = Placeholder::kStem;
    std::string literal;
  };
  std::string text_;
  std::vector<Piece> pieces_;
};

/// "{stem}", "{size}", ...
std::string_view placeholder_name(Placeholder p);

/// 8 lowercase hex digits of the low 32 bits of stable_hash(source): {hash}.
std::string source_hash8(std::string_view source);

/// The directories of a source (a URL's decoded path, a local path), each
/// reduced like a stem, joined with '/'; "" when there are none. At most 8
/// components, each at most 80 bytes. "http://127.0.0.1/a/b%20c/cat.jpg" ->
/// "a/b_c"; "/srv/../photos/x.png" -> "srv/photos".
std::string source_dirs(std::string_view source);

}  // namespace thumbmill
