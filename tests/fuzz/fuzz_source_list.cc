// libFuzzer harness for the source-list parser: arbitrary bytes are read as a
// whole list through SourceList, and as one line through parse_source_line.
// Every entry must keep the promises of shared/source_list.h; a broken one
// aborts, which libFuzzer reports as a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "shared/source_list.h"

namespace thumbmill {
namespace {

/// Prints what broke and the entry it broke on, then aborts.
[[noreturn]] void fail(const char* invariant, const SourceLine& line) {
  std::fprintf(stderr, "invariant broken: %s\n  line %llu, text (%zu bytes) '%s'\n  status '%s', location '%s'\n",
               invariant, static_cast<unsigned long long>(line.line_number), line.text.size(), line.text.c_str(),
               line.status.ToString().c_str(), line.location.c_str());
  std::abort();
}

#define FUZZ_CHECK(condition, line) \
  do {                              \
    if (!(condition)) fail(#condition, line); \
  } while (0)

bool has_control(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = text[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != prefix[i]) return false;
  }
  return true;
}

/// Lines std::getline yields for `data`: one per '\n', plus an unterminated
/// last one.
std::uint64_t count_lines(std::string_view data) {
  std::uint64_t lines = 0;
  for (char c : data) lines += c == '\n';
  return lines + (!data.empty() && data.back() != '\n');
}

/// The promises every entry keeps, whether it came from Next() or straight
/// from parse_source_line.
void check_entry(const SourceLine& line) {
  if (line.status.ok()) {
    FUZZ_CHECK(!line.text.empty(), line);
    FUZZ_CHECK(!line.location.empty(), line);
    FUZZ_CHECK(!has_control(line.location), line);
    FUZZ_CHECK(line.text.size() <= kMaxSourceLength, line);
    if (line.kind == SourceKind::kHttp) {
      FUZZ_CHECK(starts_with_ignoring_case(line.location, "http://") ||
                     starts_with_ignoring_case(line.location, "https://"),
                 line);
    }
    return;
  }
  FUZZ_CHECK(line.status.code() == Code::kInvalidArgument, line);
  const std::string prefix = "line " + std::to_string(line.line_number) + ": ";
  FUZZ_CHECK(line.status.message().starts_with(prefix), line);
  FUZZ_CHECK(line.status.message().size() > prefix.size(), line);
}

/// The whole input as a list: line numbers rise, never more entries than
/// lines, and each entry is what parse_source_line says of its own text.
void fuzz_list(std::string_view data) {
  std::istringstream in{std::string(data)};
  SourceList list(in);
  const std::uint64_t lines = count_lines(data);
  std::uint64_t entries = 0, last_line_number = 0;
  while (std::optional<SourceLine> line = list.Next()) {
    ++entries;
    check_entry(*line);
    FUZZ_CHECK(line->line_number > last_line_number, *line);
    FUZZ_CHECK(line->line_number <= lines, *line);
    FUZZ_CHECK(entries <= lines, *line);
    last_line_number = line->line_number;
    // The text is already trimmed (and without the BOM): classifying it again
    // must give the same answer.
    const SourceLine again = parse_source_line(line->text, line->line_number);
    FUZZ_CHECK(again.text == line->text, *line);
    FUZZ_CHECK(again.status.ok() == line->status.ok(), *line);
    FUZZ_CHECK(again.status.message() == line->status.message(), *line);
    if (line->status.ok()) {
      FUZZ_CHECK(again.kind == line->kind, *line);
      FUZZ_CHECK(again.location == line->location, *line);
    }
  }
  if (!list.read_status().ok()) {
    SourceLine where;
    where.status = list.read_status();
    fail("reading an in-memory list never fails", where);
  }
}

}  // namespace
}  // namespace thumbmill

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  thumbmill::fuzz_list(text);
  // The whole input as one line (newlines and all), under a line number taken
  // from its length so the "line N: " prefix is not always the same. Only
  // what Next() would hand over: blank and comment lines are skipped before
  // parse_source_line (which calls "" a local file with an empty path).
  const std::size_t first = text.find_first_not_of(" \t\r\n\v\f");
  if (first != std::string_view::npos && text[first] != '#') {
    thumbmill::check_entry(thumbmill::parse_source_line(text, size * 7919 + 1));
  }
  return 0;
}
