// FetchFacts: what the downloader learned fetching one source, carried with
// the job itself (in its queue slot, then in the worker's ResizeOutcome), so
// that a source's report entry never depends on which of two pipes the
// coordinator happened to read first.
//
// Fixed-size and trivially copyable: it lives in shared memory and in wire
// records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "shared/fixed_text.h"

namespace thumbmill {

/// Longest ETag kept (quotes included). A longer one is not kept at all: a
/// cut ETag would never match.
inline constexpr std::size_t kMaxEtag = 128;
/// Longest Last-Modified kept ("Sun, 06 Nov 1994 08:49:37 GMT" is 29).
inline constexpr std::size_t kMaxHttpDate = 64;

struct FetchFacts {
  std::uint64_t bytes = 0;       // body bytes received (a local file: its size)
  std::uint32_t tries = 0;       // transfers made, retries included (a local file: 1)
  std::int32_t http_status = 0;  // final status; 0 for a local file
  std::uint32_t fetch_ms = 0;    // from the first try's start to the publish
  char etag[kMaxEtag] = {};                // the 200's ETag, "" when none
  char last_modified[kMaxHttpDate] = {};   // the 200's Last-Modified, "" when none
};

static_assert(std::is_trivially_copyable_v<FetchFacts> && std::is_standard_layout_v<FetchFacts>);

}  // namespace thumbmill
