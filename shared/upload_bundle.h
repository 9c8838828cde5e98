// UploadBundle: one source's encoded thumbnails on their way from a worker to
// the uploader, in one extent of the upload queue's arena (a second
// JobQueue, so bounded by --upload-queue-mb like downloads by --queue-mb).
//
//   extent: [UploadBundle header][bytes of part 0][bytes of part 1]...
//
// The worker that made the bytes writes the header, with each part's
// SHA-256 (signed into the PUT: the server checks the body against it), and
// a copy of the ResizeOutcome it would have reported for a local --out: the
// uploader reports that, with its upload facts, as the source's one final
// outcome (UploadOutcome, wire.h), so a source is ok only when every
// thumbnail is stored. The header starts with its own size and version:
// a bundle from a build with another layout is refused, never misread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "shared/job_queue.h"
#include "shared/wire.h"

namespace thumbmill {

struct UploadPart {
  std::uint64_t offset = 0;  // from the start of the extent
  std::uint64_t length = 0;
  char sha256[65] = {};      // lowercase hex, NUL-terminated
  char reserved[7] = {};
};

struct UploadBundle {
  static constexpr std::uint32_t kVersion = 1;
  std::uint32_t layout_bytes = sizeof(UploadBundle);  // first: checked before anything else is read
  std::uint32_t version = kVersion;
  std::uint32_t part_count = 0;  // == resize.output_count
  std::uint32_t reserved = 0;
  ResizeOutcome resize;          // code kOk, outputs[i] describes part i
  UploadPart parts[kMaxOutputs] = {};
};

static_assert(std::is_trivially_copyable_v<UploadBundle> && std::is_standard_layout_v<UploadBundle>);

/// Bytes of the extent a bundle of parts of these sizes needs.
inline std::uint64_t upload_bundle_bytes(std::span<const std::uint64_t> part_lengths) {
  std::uint64_t total = sizeof(UploadBundle);
  for (std::uint64_t n : part_lengths) total += n;
  return total;
}

/// The bundle at the start of `extent` when it is one of this build's and
/// every part lies inside the extent; nullopt otherwise (a foreign or
/// damaged bundle: its source fails rather than storing garbage).
inline std::optional<UploadBundle> read_upload_bundle(std::span<const std::byte> extent) {
  UploadBundle b;
  if (extent.size() < sizeof b) return std::nullopt;
  std::memcpy(&b, extent.data(), sizeof b);
  if (b.layout_bytes != sizeof(UploadBundle) || b.version != UploadBundle::kVersion) return std::nullopt;
  if (b.part_count > kMaxOutputs || b.part_count != b.resize.output_count || !well_formed(b.resize))
    return std::nullopt;
  for (std::uint32_t i = 0; i < b.part_count; ++i) {
    const UploadPart& p = b.parts[i];
    if (p.offset < sizeof b || p.offset > extent.size() || p.length > extent.size() - p.offset) return std::nullopt;
    if (::strnlen(p.sha256, sizeof p.sha256) != 64) return std::nullopt;
  }
  return b;
}

}  // namespace thumbmill
