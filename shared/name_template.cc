// NameTemplate: parsing --name, the collision rule, and expanding one name.
#include "shared/name_template.h"

#include <cstdio>

#include "shared/output_names.h"
#include "shared/url.h"

namespace thumbmill {
namespace {

constexpr std::size_t kMaxDirComponents = 8;
constexpr std::size_t kMaxComponentBytes = 255;  // NAME_MAX on Linux file systems

struct PlaceholderInfo {
  Placeholder placeholder;
  std::string_view name;
  std::size_t max_bytes;  // longest value, for the NAME_MAX check
};

constexpr PlaceholderInfo kPlaceholders[] = {
    {Placeholder::kStem, "stem", 80 + 9},  // a stem, "-" and 8 hex on a clash
    {Placeholder::kSize, "size", 13},      // "100000x100000"
    {Placeholder::kWidth, "width", 6},
    {Placeholder::kHeight, "height", 6},
    {Placeholder::kExt, "ext", 4},
    {Placeholder::kHash, "hash", 8 + 9},
    {Placeholder::kDir, "dir", 80},  // one component at a time
};

const PlaceholderInfo& info_of(Placeholder p) {
  for (const PlaceholderInfo& info : kPlaceholders)
    if (info.placeholder == p) return info;
  return kPlaceholders[0];
}

bool is_literal_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == '/';
}

Status bad_name(const std::string& message) { return Status(Code::kInvalidArgument, "--name: " + message); }

}  // namespace

std::string_view placeholder_name(Placeholder p) { return info_of(p).name; }

std::string source_hash8(std::string_view source) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<std::uint32_t>(stable_hash(source)));
  return text;
}

std::string source_dirs(std::string_view source) {
  const bool is_url = parse_url(source).ok();
  const std::string path = source_path(source);
  std::vector<std::string> parts;
  std::size_t at = 0;
  for (;;) {
    const std::size_t slash = path.find('/', at);
    if (slash == std::string::npos) break;  // the rest is the file name
    const std::string_view segment = std::string_view(path).substr(at, slash - at);
    at = slash + 1;
    // (Never an empty one to percent_decode: libcurl reads length 0 as "up to the NUL".)
    if (segment.empty()) continue;
    // Decoded after it is cut out, as the stem is: "a%2Fb" is one directory.
    std::string part = sanitize_name_part(is_url ? percent_decode(segment) : std::string(segment));
    if (!part.empty() && parts.size() < kMaxDirComponents) parts.push_back(std::move(part));
  }
  std::string joined;
  for (const std::string& part : parts) {
    if (!joined.empty()) joined += '/';
    joined += part;
  }
  return joined;
}

Result<NameTemplate> NameTemplate::Parse(std::string_view text) {
  NameTemplate t;
  t.text_ = std::string(text);
  if (text.empty()) return bad_name("the template is empty");
  if (text.front() == '/') return bad_name("'" + t.text_ + "' is absolute: names are relative to --out");
  for (std::size_t at = 0; at < text.size();) {
    if (text[at] == '{') {
      const std::size_t close = text.find('}', at);
      if (close == std::string_view::npos) return bad_name("a '{' without '}' in '" + t.text_ + "'");
      const std::string_view name = text.substr(at + 1, close - at - 1);
      const PlaceholderInfo* found = nullptr;
      for (const PlaceholderInfo& info : kPlaceholders)
        if (info.name == name) found = &info;
      if (!found)
        return bad_name("unknown placeholder {" + std::string(name) +
                        "}; known: {stem} {size} {width} {height} {ext} {hash} {dir}");
      if (!t.pieces_.empty() && t.pieces_.back().is_placeholder)
        return bad_name("{" + std::string(placeholder_name(t.pieces_.back().placeholder)) + "}{" + std::string(name) +
                        "}: put text between two placeholders, or names could run together");
      t.pieces_.push_back({true, found->placeholder, {}});
      at = close + 1;
      continue;
    }
    if (text[at] == '}') return bad_name("a '}' without '{' in '" + t.text_ + "'");
    if (!is_literal_byte(text[at]))
      return bad_name("'" + std::string(1, text[at]) + "' in '" + t.text_ + "': literal text may hold A-Z a-z 0-9 . _ - /");
    if (t.pieces_.empty() || t.pieces_.back().is_placeholder) t.pieces_.push_back({});
    t.pieces_.back().literal += text[at++];
  }
  // Text between two placeholders must hold a byte that one of them can
  // never hold, so a name splits back into its values one way only:
  // "{stem}_{size}" and "{width}x{height}" do; "{stem}x{size}" does not
  // ("ax1" x "2" = "a" x "1x2").
  const bool has_stem = t.uses(Placeholder::kStem);
  const auto alphabet = [has_stem](Placeholder p) -> std::string_view {
    switch (p) {
      case Placeholder::kSize: return "0123456789x";
      case Placeholder::kWidth:
      case Placeholder::kHeight: return "0123456789";
      case Placeholder::kExt: return "abcdefghijklmnopqrstuvwxyz";
      // Without {stem} the hash is the key: "-" and 8 more on a clash.
      case Placeholder::kHash: return has_stem ? "0123456789abcdef" : "0123456789abcdef-";
      default: return {};  // stem, dir: any literal byte may be in them
    }
  };
  const auto separates = [&](std::string_view literal, Placeholder p) {
    const std::string_view a = alphabet(p);
    return !a.empty() && literal.find_first_not_of(a) != std::string_view::npos;
  };
  for (std::size_t i = 1; i + 1 < t.pieces_.size(); ++i) {
    const Piece& p = t.pieces_[i];
    const Piece &before = t.pieces_[i - 1], &after = t.pieces_[i + 1];
    if (p.is_placeholder || !before.is_placeholder || !after.is_placeholder) continue;
    if (p.literal.find('/') != std::string::npos || separates(p.literal, before.placeholder) ||
        separates(p.literal, after.placeholder))
      continue;
    return bad_name("'" + p.literal + "' between {" + std::string(placeholder_name(before.placeholder)) + "} and {" +
                    std::string(placeholder_name(after.placeholder)) +
                    "} could also be part of their values: separate them with '_', '-', '.' or '/'");
  }
  // Each '/'-separated component: not empty, ".", ".." or hidden; {dir}
  // stands alone (it may be empty or several directories), never last;
  // {width}/{height} only in the last; at most NAME_MAX bytes expanded.
  struct Component {
    std::string first_literal;  // its text before any placeholder
    bool starts_with_placeholder = false;
    bool has_dir = false, has_dims = false, only_dir = true, empty = true;
    std::size_t max_bytes = 0;
  };
  std::vector<Component> components(1);
  for (const Piece& piece : t.pieces_) {
    if (piece.is_placeholder) {
      Component& c = components.back();
      if (c.empty) c.starts_with_placeholder = true;
      c.empty = false;
      c.has_dir |= piece.placeholder == Placeholder::kDir;
      c.has_dims |= piece.placeholder == Placeholder::kWidth || piece.placeholder == Placeholder::kHeight;
      c.only_dir &= piece.placeholder == Placeholder::kDir;
      c.max_bytes += info_of(piece.placeholder).max_bytes;
      continue;
    }
    for (char ch : piece.literal) {
      if (ch == '/') {
        components.emplace_back();
        continue;
      }
      Component& c = components.back();
      if (c.empty && !c.starts_with_placeholder) c.first_literal += ch;
      c.empty = false;
      c.only_dir = false;
      ++c.max_bytes;
    }
  }
  for (std::size_t i = 0; i < components.size(); ++i) {
    const Component& c = components[i];
    const bool last = i + 1 == components.size();
    if (c.empty) return bad_name("'" + t.text_ + "' has an empty directory name (\"//\" or a trailing '/')");
    if (!c.starts_with_placeholder && c.first_literal.starts_with('.'))
      return bad_name("'" + t.text_ + "': a name may not start with '.' (no '..', no hidden files)");
    if (c.has_dir && !c.only_dir) return bad_name("{dir} must be a whole directory: write {dir}/...");
    if (c.has_dir && last) return bad_name("{dir} names directories: put the file name after it, {dir}/...");
    if (c.has_dims && !last)
      return bad_name("{width} and {height} are known only after resizing: use them in the file name, not a directory");
    if (c.max_bytes > kMaxComponentBytes)
      return bad_name("'" + t.text_ + "' can make a name longer than " + std::to_string(kMaxComponentBytes) + " bytes");
  }
  return t;
}

Result<NameTemplate> NameTemplate::ForOutputs(std::size_t sizes, std::size_t formats) const {
  if (sizes > 1 && !uses(Placeholder::kSize))
    return bad_name("'" + text_ + "' has no {size}, but " + std::to_string(sizes) + " sizes are made from each source");
  if (formats > 1 && !uses(Placeholder::kExt))
    return bad_name("'" + text_ + "' has no {ext}, but " + std::to_string(formats) + " formats are made from each source");
  if (uses(Placeholder::kStem) || uses(Placeholder::kHash)) return *this;
  std::string with_hash = text_;
  constexpr std::string_view kExtSuffix = ".{ext}";
  // Before a final ".{ext}" ({size}/photo.{ext} -> {size}/photo_{hash}.{ext}),
  // else at the end.
  if (with_hash.ends_with(kExtSuffix) && with_hash.size() > kExtSuffix.size())
    with_hash.insert(with_hash.size() - kExtSuffix.size(), "_{hash}");
  else
    with_hash += "_{hash}";
  return Parse(with_hash);
}

bool NameTemplate::uses(Placeholder p) const {
  for (const Piece& piece : pieces_)
    if (piece.is_placeholder && piece.placeholder == p) return true;
  return false;
}

std::string NameTemplate::Expand(const NameValues& v) const {
  std::string out;
  for (const Piece& piece : pieces_) {
    if (!piece.is_placeholder) {
      out += piece.literal;
      continue;
    }
    switch (piece.placeholder) {
      case Placeholder::kStem: out += v.stem; break;
      case Placeholder::kSize: out += v.size.label(); break;
      case Placeholder::kWidth: out += std::to_string(v.width); break;
      case Placeholder::kHeight: out += std::to_string(v.height); break;
      case Placeholder::kExt: out += format_extension(v.format); break;
      case Placeholder::kHash: out += keyed_by_stem() ? source_hash8(v.source) : std::string(v.stem); break;
      case Placeholder::kDir: out += source_dirs(v.source); break;
    }
  }
  // An empty {dir} leaves "//" or a leading '/': no component is empty.
  std::string clean;
  for (std::size_t at = 0; at <= out.size();) {
    std::size_t slash = out.find('/', at);
    if (slash == std::string::npos) slash = out.size();
    if (slash > at) {
      if (!clean.empty()) clean += '/';
      clean.append(out, at, slash - at);
    }
    at = slash + 1;
  }
  return clean;
}

}  // namespace thumbmill
