// Fixed-size text fields of records that cross a process boundary (wire.h
// records, job queue slots): every write into one and every read from one.
//
// Every write goes through copy_text (messages: cut visibly when too long)
// or copy_whole (names and paths: a shortened one would name something
// else, so it is refused). Every read of one that another process wrote goes
// through text_of, which stops at the array's end even when the writer left
// no NUL.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace thumbmill {

/// Copies `text` into `dst`, NUL-terminated. Text longer than N - 1 bytes is
/// cut on a UTF-8 character boundary (the report is JSON) and ends in "...",
/// so a reader sees it was cut. Returns false when it was cut.
template <std::size_t N>
bool copy_text(char (&dst)[N], std::string_view text) {
  static_assert(N > 4);
  if (text.size() < N) {
    if (!text.empty()) std::memcpy(dst, text.data(), text.size());  // data() may be null
    dst[text.size()] = '\0';
    return true;
  }
  std::size_t keep = N - 4;  // room for "..." and the NUL
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  std::memcpy(dst, text.data(), keep);
  std::memcpy(dst + keep, "...", 4);
  return false;
}

/// Copies `text` into `dst` whole and NUL-terminated, or, when it does not
/// fit, leaves `dst` empty and returns false.
template <std::size_t N>
[[nodiscard]] bool copy_whole(char (&dst)[N], std::string_view text) {
  if (text.size() >= N) {
    dst[0] = '\0';
    return false;
  }
  // An empty view may have a null data(): memcpy must not see it.
  if (!text.empty()) std::memcpy(dst, text.data(), text.size());
  dst[text.size()] = '\0';
  return true;
}

/// The text in a fixed array: up to its first NUL, or all N bytes when
/// there is none. Never reads past the array.
template <std::size_t N>
std::string_view text_of(const char (&src)[N]) {
  return {src, ::strnlen(src, N)};
}

/// Whether the array holds a NUL (a reader of it as a C string stays inside).
template <std::size_t N>
bool terminated(const char (&src)[N]) {
  return ::strnlen(src, N) < N;
}

}  // namespace thumbmill
