// The option value parsers: sizes ("200", "200x150"), byte sizes ("100MB",
// "64KiB"), pixel counts ("50MP"), formats ("jpeg", "jpg"), integers within
// their range (option_limits.h), and the default worker count. Each returns a
// Result whose message is the one the user sees after "--flag: ".
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <span>
#include <thread>

#include "shared/option_limits.h"
#include "shared/options.h"

namespace thumbmill {
namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim_blanks(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

/// All of `text` as a base-10 number; nullopt otherwise. (CLI11's own
/// conversion reads "010" as octal and "0x10" as hex, so every number is
/// checked here and handed on in canonical form.)
template <class T>
std::optional<T> parse_decimal(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || stop != end || text.empty()) return std::nullopt;
  return value;
}

// ---------------------------------------------------------------------------
// Counts with unit suffixes ("100MB", "50MP").

struct Unit {
  std::string_view name;  // lowercase
  std::uint64_t factor;
};

constexpr std::uint64_t kKilo = 1000, kKibi = 1024;

constexpr Unit kByteUnits[] = {
    {"", 1},
    {"b", 1},
    {"k", kKilo},
    {"kb", kKilo},
    {"ki", kKibi},
    {"kib", kKibi},
    {"m", kKilo * kKilo},
    {"mb", kKilo * kKilo},
    {"mi", kKibi * kKibi},
    {"mib", kKibi * kKibi},
    {"g", kKilo * kKilo * kKilo},
    {"gb", kKilo * kKilo * kKilo},
    {"gi", kKibi * kKibi * kKibi},
    {"gib", kKibi * kKibi * kKibi},
    {"t", kKilo * kKilo * kKilo * kKilo},
    {"tb", kKilo * kKilo * kKilo * kKilo},
    {"ti", kKibi * kKibi * kKibi * kKibi},
    {"tib", kKibi * kKibi * kKibi * kKibi},
};

constexpr Unit kPixelUnits[] = {
    {"", 1},
    {"p", 1},
    {"k", kKilo},
    {"kp", kKilo},
    {"m", kKilo * kKilo},
    {"mp", kKilo * kKilo},
    {"g", kKilo * kKilo * kKilo},
    {"gp", kKilo * kKilo * kKilo},
};

/// "<digits>[blanks]<unit>" times the unit's factor; nullopt when malformed,
/// the unit is unknown, or the product overflows.
std::optional<std::uint64_t> parse_count(std::string_view text, std::span<const Unit> units) {
  text = trim_blanks(text);
  std::size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
  std::optional<std::uint64_t> number = parse_decimal<std::uint64_t>(text.substr(0, digits));
  if (!number) return std::nullopt;
  const std::string unit = lowercase(trim_blanks(text.substr(digits)));
  for (const Unit& candidate : units) {
    std::uint64_t product;
    if (candidate.name != unit) continue;
    if (__builtin_mul_overflow(*number, candidate.factor, &product)) return std::nullopt;
    return product;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Formats.

struct FormatInfo {
  Format format;
  std::string_view name;
  std::string_view extension;
};

constexpr FormatInfo kFormats[] = {
    {Format::kJpeg, "jpeg", "jpg"},
    {Format::kWebp, "webp", "webp"},
    {Format::kPng, "png", "png"},
    {Format::kAvif, "avif", "avif"},
};

const FormatInfo& info_of(Format format) {
  for (const FormatInfo& info : kFormats) {
    if (info.format == format) return info;
  }
  return kFormats[0];  // unreachable for a valid enum value
}

}  // namespace

// ---------------------------------------------------------------------------
// Shared with the command line and the checks (option_limits.h).

Status invalid_option(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

Status too_many_sizes(std::size_t count) {
  return invalid_option("--sizes: " + std::to_string(count) + " different sizes given, at most " +
                        std::to_string(kMaxSizes) + " are allowed");
}

Status too_many_outputs(std::size_t sizes, std::size_t formats) {
  return invalid_option("--format: " + std::to_string(sizes) + " sizes x " + std::to_string(formats) + " formats make " +
                        std::to_string(sizes * formats) + " thumbnails per source, at most " +
                        std::to_string(kMaxOutputsPerSource) + " are allowed");
}

// Built with += : GCC 12 warns falsely (-Wrestrict) about "'" + std::string.
std::string quoted(std::string_view text) {
  std::string out = "'";
  out += text;
  out += '\'';
  return out;
}

std::string range_text(const IntLimit& limit) {
  return std::to_string(limit.min) + "-" + std::to_string(limit.max);
}

Result<int> parse_int_in(std::string_view text, const IntLimit& limit) {
  std::optional<int> value = parse_decimal<int>(text);
  if (!value || *value < limit.min || *value > limit.max) {
    return invalid_option(quoted(text) + " is not an integer in " + range_text(limit));
  }
  return *value;
}

bool known_format(Format format) {
  for (const FormatInfo& info : kFormats) {
    if (info.format == format) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Value parsers.

std::string SizeSpec::label() const {
  std::string text = std::to_string(width);
  if (height != 0) {
    text += 'x';
    text += std::to_string(height);
  }
  return text;
}

Result<SizeSpec> parse_size(std::string_view text) {
  auto in_range = [](std::optional<int> n) { return n && *n >= 1 && *n <= kMaxSizeDimension; };
  const std::string_view trimmed = trim_blanks(text);
  const std::size_t x = trimmed.find_first_of("xX");
  const std::optional<int> width = parse_decimal<int>(trimmed.substr(0, x));
  std::optional<int> height;
  if (x != std::string_view::npos) height = parse_decimal<int>(trimmed.substr(x + 1));
  if (!in_range(width) || (x != std::string_view::npos && !in_range(height))) {
    return invalid_option(quoted(text) + " is not a width or WIDTHxHEIGHT (1-" +
                          std::to_string(kMaxSizeDimension) + ")");
  }
  return SizeSpec{*width, height.value_or(0)};
}

Result<std::uint64_t> parse_byte_size(std::string_view text) {
  std::optional<std::uint64_t> bytes = parse_count(text, kByteUnits);
  if (!bytes || *bytes == 0) {
    return invalid_option(quoted(text) + " is not a byte count of at least 1 (e.g. 1000000, 100MB, 64KiB)");
  }
  return *bytes;
}

Result<std::uint64_t> parse_pixel_count(std::string_view text) {
  std::optional<std::uint64_t> pixels = parse_count(text, kPixelUnits);
  if (!pixels || *pixels == 0) {
    return invalid_option(quoted(text) + " is not a pixel count of at least 1 (e.g. 100000000, 100M, 50MP)");
  }
  return *pixels;
}

Result<Format> parse_format(std::string_view text) {
  const std::string name = lowercase(text);
  for (const FormatInfo& info : kFormats) {
    // The extension doubles as an alias: "jpg".
    if (name == info.name || name == info.extension) return info.format;
  }
  return invalid_option(quoted(text) + " is not one of jpeg, webp, png, avif");
}

Result<std::vector<Format>> parse_formats(std::string_view text) {
  std::vector<Format> formats;
  for (std::size_t at = 0;;) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    Result<Format> format = parse_format(trim_blanks(text.substr(at, comma - at)));
    if (!format.ok()) return format.status();
    if (std::find(formats.begin(), formats.end(), *format) == formats.end()) formats.push_back(*format);
    if (comma == text.size()) return formats;
    at = comma + 1;
  }
}

std::string_view format_name(Format format) { return info_of(format).name; }

std::string_view format_extension(Format format) { return info_of(format).extension; }

int default_worker_count() {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = static_cast<long>(std::thread::hardware_concurrency());
  // Clamped so that the default always passes finalize_options.
  return static_cast<int>(std::clamp<long>(online, 1, kWorkers.max));
}

}  // namespace thumbmill
