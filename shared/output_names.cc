// Output names: a safe stem per source, unique over a run, and the file
// names of its thumbnails.
#include "shared/output_names.h"

#include <cctype>
#include <cstdio>
#include <optional>

#include "shared/url.h"

namespace thumbmill {
namespace {

constexpr std::size_t kMaxStemLength = 80;
constexpr std::string_view kFallbackStem = "image";

bool is_safe_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool is_alnum_byte(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

/// The path of a URL as libcurl (the parser that fetches it) reads it,
/// escapes kept; nullopt when `source` is not a URL libcurl parses, i.e. a
/// local path.
std::optional<std::string> url_path(std::string_view source) {
  Result<ParsedUrl> url = parse_url(source);
  if (!url.ok()) return std::nullopt;
  return std::move(url->path);
}

/// The last segment of `path` that is not empty ("" when there is none).
std::string_view last_segment(std::string_view path) {
  while (path.ends_with('/')) path.remove_suffix(1);
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

/// `name` without its extension: the last '.' and after, when that '.' is
/// not the first byte and is followed by 1-8 letters or digits ("cat.jpg",
/// "scan.tiff"; not ".profile", "v1.2-beta", "a.").
std::string_view drop_extension(std::string_view name) {
  const std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return name;
  const std::string_view extension = name.substr(dot + 1);
  if (extension.empty() || extension.size() > 8) return name;
  for (char c : extension) {
    if (!is_alnum_byte(c)) return name;
  }
  return name.substr(0, dot);
}

/// Every byte outside [A-Za-z0-9._-] becomes '_', with runs of '_' collapsed.
std::string map_unsafe_bytes(std::string_view name) {
  std::string out;
  for (char c : name) {
    const char mapped = is_safe_byte(c) ? c : '_';
    if (mapped == '_' && out.ends_with('_')) continue;
    out += mapped;
  }
  return out;
}

/// Leading '.', '_', '-' and trailing '.', '_' removed: no hidden files, no
/// names that read as options, no trailing dot (which some file systems drop).
std::string_view strip_edges(std::string_view name) {
  const std::size_t first = name.find_first_not_of("._-");
  if (first == std::string_view::npos) return {};
  name.remove_prefix(first);
  return name.substr(0, name.find_last_not_of("._") + 1);
}

std::string hex8(std::uint32_t value) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

}  // namespace

std::string sanitize_stem(std::string_view source) {
  const std::optional<std::string> path = url_path(source);
  // Only a URL is percent-encoded; a local file may really be called "a%20b".
  // A segment is decoded after it is cut out: "a%2Fb" is one name.
  const std::string name = path ? percent_decode(last_segment(*path)) : std::string(last_segment(source));
  std::string stem(strip_edges(map_unsafe_bytes(drop_extension(name))));
  if (stem.size() > kMaxStemLength) stem = std::string(strip_edges(stem.substr(0, kMaxStemLength)));
  return stem.empty() ? std::string(kFallbackStem) : stem;
}

std::string sanitize_name_part(std::string_view name) {
  std::string part(strip_edges(map_unsafe_bytes(name)));
  if (part.size() > kMaxStemLength) part = std::string(strip_edges(part.substr(0, kMaxStemLength)));
  return part;
}

std::string source_path(std::string_view source) {
  std::optional<std::string> path = url_path(source);
  return path ? *path : std::string(source);
}

std::uint64_t stable_hash(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64-bit offset basis
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;  // FNV-1a 64-bit prime
  }
  return hash;
}

std::string StemAllocator::Allocate(std::string_view source) {
  // Stems are compared without case, so two names never differ only in case
  // (they would collide on a case-insensitive file system). The set holds
  // hashes: two different stems with equal hashes only cost one a suffix,
  // never a shared name.
  const std::uint64_t who = stable_hash(source);
  const auto claim = [this, who](const std::string& stem) {
    return taken_.try_emplace(stable_hash(stem_key(stem)), who).first->second == who;
  };
  const std::string stem = sanitize_stem(source);
  if (claim(stem)) return stem;
  std::string input(source);
  for (std::uint64_t attempt = 1;; ++attempt) {
    const std::string candidate = stem + "-" + hex8(static_cast<std::uint32_t>(stable_hash(input)));
    if (claim(candidate)) return candidate;
    input = std::string(source) + "#" + std::to_string(attempt);
  }
}

Result<std::string> StemAllocator::Allocate(std::string_view source, const StemClaimFn& claim,
                                            const std::string& preferred, const std::string& base) {
  // A candidate is ours when no other source of this run has it and the
  // claim says it is this source's. Only stems handed out enter `taken_`:
  // one owned on disk by a source not in this run may still be the stem of
  // a later source of this run that owns it.
  const std::uint64_t who = stable_hash(source);
  const auto try_stem = [&](const std::string& stem) -> Result<bool> {
    const std::uint64_t key = stable_hash(stem_key(stem));
    if (auto it = taken_.find(key); it != taken_.end() && it->second != who) return false;
    auto ours = claim(stem);
    if (!ours.ok() || !*ours) return ours;
    taken_.emplace(key, who);
    return true;
  };
  if (!preferred.empty()) {
    auto ours = try_stem(preferred);
    if (!ours.ok()) return ours.status();
    if (*ours) return preferred;
  }
  const std::string stem = base.empty() ? sanitize_stem(source) : base;
  std::string candidate = stem;
  std::string input(source);
  for (std::uint64_t attempt = 1;; ++attempt) {
    auto ours = try_stem(candidate);
    if (!ours.ok()) return ours.status();
    if (*ours) return candidate;
    candidate = stem + "-" + hex8(static_cast<std::uint32_t>(stable_hash(input)));
    input = std::string(source) + "#" + std::to_string(attempt);
  }
}

std::string thumbnail_file_name(std::string_view stem, const SizeSpec& size, Format format) {
  std::string name(stem);
  name += '_';
  name += size.label();
  name += '.';
  name += format_extension(format);
  return name;
}

std::string stem_key(std::string_view stem) {
  std::string out(stem);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace thumbmill
