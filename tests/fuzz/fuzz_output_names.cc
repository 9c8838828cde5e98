// libFuzzer harness for output names: arbitrary bytes as a source for
// sanitize_stem and thumbnail_file_name, and split at '\n' into a run of
// sources for StemAllocator. Whatever the source says, the thumbnail must
// land directly inside the output directory under a safe, unique name; a
// broken promise aborts, which libFuzzer reports as a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "shared/options.h"
#include "shared/output_names.h"

namespace thumbmill {
namespace {

/// Prints what broke, for which source and name, then aborts.
[[noreturn]] void fail(const char* invariant, std::string_view source, std::string_view name) {
  std::fprintf(stderr, "invariant broken: %s\n  source (%zu bytes) '%.*s'\n  name '%.*s'\n", invariant, source.size(),
               static_cast<int>(source.size()), source.data(), static_cast<int>(name.size()), name.data());
  std::abort();
}

#define FUZZ_CHECK(condition, source, name) \
  do {                                      \
    if (!(condition)) fail(#condition, source, name); \
  } while (0)

constexpr std::string_view kSafeBytes = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

/// The contract of shared/output_names.h for one stem. ".." inside a stem
/// ("a..b") is allowed: the header does not exclude it and it cannot name a
/// parent directory, since the stem is never "." or ".." and holds no '/'.
void check_stem(std::string_view source, const std::string& stem) {
  FUZZ_CHECK(!stem.empty(), source, stem);
  FUZZ_CHECK(stem.size() <= 80, source, stem);
  FUZZ_CHECK(stem.find_first_not_of(kSafeBytes) == std::string::npos, source, stem);
  FUZZ_CHECK(stem != "." && stem != "..", source, stem);
  FUZZ_CHECK(stem.front() != '.' && stem.front() != '_' && stem.front() != '-', source, stem);
  FUZZ_CHECK(stem.back() != '.' && stem.back() != '_', source, stem);
  FUZZ_CHECK(stem.find("__") == std::string::npos, source, stem);
}

/// A size and format picked from the input, so every label and extension
/// gets exercised without taking bytes away from the source.
void check_file_name(std::string_view source, const std::string& stem) {
  const std::uint64_t pick = stable_hash(source);
  const SizeSpec size{static_cast<int>(pick % kMaxSizeDimension) + 1,
                      (pick >> 20) % 2 ? static_cast<int>((pick >> 24) % kMaxSizeDimension) + 1 : 0};
  const auto format = static_cast<Format>((pick >> 60) % 4);
  const std::string name = thumbnail_file_name(stem, size, format);
  FUZZ_CHECK(name.find('/') == std::string::npos, source, name);
  FUZZ_CHECK(name.find('\0') == std::string::npos, source, name);
  const std::filesystem::path out = "/srv/thumbmill/out";
  const std::filesystem::path full = (out / name).lexically_normal();
  FUZZ_CHECK(full.parent_path() == out, source, name);
  FUZZ_CHECK(full.filename() == name, source, name);
}

/// The sources of one run: the input's lines, each once (the coordinator
/// drops repeated sources before naming them).
std::vector<std::string_view> split_sources(std::string_view data) {
  std::vector<std::string_view> sources;
  std::set<std::string_view> seen;
  while (!data.empty()) {
    const std::size_t end = data.find('\n');
    const std::string_view source = data.substr(0, end);
    if (seen.insert(source).second) sources.push_back(source);
    data.remove_prefix(end == std::string_view::npos ? data.size() : end + 1);
  }
  return sources;
}

/// Distinct stems (ignoring case), each its source's stem or that stem with
/// a "-<8 hex>" suffix, and the same stems again for the same run.
void check_allocator(std::string_view data) {
  const std::vector<std::string_view> sources = split_sources(data);
  StemAllocator first, second;
  std::set<std::string> taken;
  for (std::string_view source : sources) {
    const std::string stem = first.Allocate(source);
    FUZZ_CHECK(taken.insert(lowercase(stem)).second, source, stem);
    FUZZ_CHECK(second.Allocate(source) == stem, source, stem);
    const std::string plain = sanitize_stem(source);
    if (stem != plain) {
      FUZZ_CHECK(stem.size() == plain.size() + 9 && stem.starts_with(plain) && stem[plain.size()] == '-', source,
                 stem);
      FUZZ_CHECK(stem.find_first_not_of("0123456789abcdef", plain.size() + 1) == std::string::npos, source, stem);
    }
  }
}

}  // namespace
}  // namespace thumbmill

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  const std::string stem = thumbmill::sanitize_stem(source);
  thumbmill::check_stem(source, stem);
  thumbmill::check_file_name(source, stem);
  thumbmill::check_allocator(source);
  return 0;
}
