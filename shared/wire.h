// Wire records: everything that crosses a process boundary through a pipe.
//
// The coordinator sends FetchRequests to the downloader; the downloader
// answers each with a FetchOutcome; each worker sends a ResizeOutcome per
// job; with an --out bucket, the uploader sends an UploadOutcome per source
// the workers handed it (shared/upload_bundle.h). While it has work, the downloader also sends a Heartbeat at least
// every kHeartbeatIntervalMs, so a stopped or wedged one is noticed by its
// silence (the coordinator kills it after many missed beats). Every message is one frame, a FrameHeader and a fixed-size, trivially
// copyable record, written with a single write() of at most PIPE_BUF bytes,
// which the kernel delivers whole or not at all: a writer killed mid-message
// never leaves half a record in the pipe. Only FetchRequest has a variable
// tail (the URL); the bytes after `url_length` are not sent.
//
// The threaded build uses the same pipes between threads.
#pragma once

#include <limits.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "shared/fetch_facts.h"
#include "shared/fixed_text.h"
#include "shared/job_queue.h"
#include "shared/options.h"
#include "shared/source_list.h"

namespace thumbmill {

/// Exit status a child uses for "fatal, do not respawn me" (bad arguments, a
/// segment it cannot attach, libvips failing to start).
inline constexpr int kChildFatalExit = 78;

/// The file descriptors children are given, whatever the parent used.
inline constexpr int kRequestFd = 3;  // downloader: FetchRequests in (-1 for the others: not open)
inline constexpr int kResultFd = 4;   // all children: outcomes out
inline constexpr int kOptionsFd = 5;  // all children: the run's options (JSON), read and closed at start

enum class MessageType : std::uint32_t {
  kFetchRequest = 1,
  kFetchOutcome = 2,
  kResizeOutcome = 3,
  kHeartbeat = 4,
  kUploadOutcome = 5,
};

struct FrameHeader {
  MessageType type;
  std::uint32_t size;  // bytes of record following the header
};

inline constexpr std::size_t kMaxErrorText = 240;
/// One OutputRecord per output (sizes x formats): finalize_options refuses
/// more than this, in the coordinator and again in every child. Bounded by
/// PIPE_BUF through ResizeOutcome and UploadOutcome (static_asserts below).
inline constexpr std::size_t kMaxOutputs = kMaxOutputsPerSource;

/// Coordinator -> downloader: fetch one source into the queue. With a
/// validator from an earlier run (an HTTP source the manifest says is done),
/// the request is conditional, and a 304 is answered as not modified.
struct FetchRequest {
  std::uint64_t source_id = 0;
  std::uint32_t kind = 0;  // SourceKind
  std::uint32_t url_length = 0;
  char stem[kMaxStem] = {};
  char if_none_match[kMaxEtag] = {};           // "" : not sent
  char if_modified_since[kMaxHttpDate] = {};   // "" : not sent
  char url[kMaxSourceLength + 1] = {};  // last (only url_length bytes are sent): a URL, or a local path for kFile
};

/// Downloader -> coordinator: the source is in the queue (ok), or failed.
struct FetchOutcome {
  std::uint64_t source_id = 0;
  std::uint64_t bytes = 0;        // body bytes received
  std::uint32_t fetch_ms = 0;
  std::uint32_t tries = 0;        // transfers made (retries included)
  std::int32_t http_status = 0;   // 0 when none (file, connection failure)
  std::uint32_t code = 0;         // Code; kOk: published to the queue, or not_modified
  std::uint32_t not_modified = 0; // 1: a conditional request got 304; nothing published
  char error[kMaxErrorText] = {};
};

struct OutputRecord {
  std::int32_t width = 0;
  std::int32_t height = 0;
  std::uint64_t bytes = 0;
};

/// Worker -> coordinator: one job done, with or without thumbnails.
struct ResizeOutcome {
  std::uint64_t source_id = 0;
  std::uint64_t body_bytes = 0;
  FetchFacts fetch;               // copied from the job's slot: what its fetch did
  std::uint32_t attempt = 0;
  std::uint32_t resize_ms = 0;
  std::uint32_t code = 0;         // Code
  std::uint32_t output_count = 0;
  // 1: the thumbnails went to the upload queue (an --out bucket); the
  // source is finished by the uploader's UploadOutcome, not by this.
  std::uint32_t handed_to_uploader = 0;
  OutputRecord outputs[kMaxOutputs] = {};
  char error[kMaxErrorText] = {};
};

/// Uploader -> coordinator: one source's thumbnails all stored (code kOk),
/// or why not. `resize` is the worker's outcome, carried in the bundle, so
/// this one record finishes the source whatever order the pipes are read in.
struct UploadOutcome {
  ResizeOutcome resize;
  std::uint32_t code = 0;        // Code of the upload
  std::uint32_t attempts = 0;    // PUTs made, retries included
  std::uint32_t upload_ms = 0;   // from the bundle's take to its last PUT's end
  std::uint32_t reserved = 0;
  std::uint64_t bytes = 0;       // body bytes stored
  char error[kMaxErrorText] = {};
};

/// Longest a downloader with work stays silent. Receivers must allow many
/// times this (a busy machine delays a beat), never one interval.
inline constexpr int kHeartbeatIntervalMs = 250;

/// Downloader -> coordinator: alive, with this much work (sent only while
/// it has some; any other frame is a sign of life too).
struct Heartbeat {
  std::uint32_t transfers = 0;  // sources being fetched
  std::uint32_t waiting = 0;    // requests read and not started
};

template <class T>
constexpr bool kIsWireRecord = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T> &&
                               sizeof(FrameHeader) + sizeof(T) <= PIPE_BUF;

// The largest record: its URL tail must leave room for the header.
static_assert(kIsWireRecord<FetchRequest>);
static_assert(kIsWireRecord<FetchOutcome>);
static_assert(kIsWireRecord<ResizeOutcome>);
static_assert(kIsWireRecord<Heartbeat>);
static_assert(kIsWireRecord<UploadOutcome>);
// Raising kMaxOutputs grows both outcome records: they must stay one atomic write.
static_assert(sizeof(FrameHeader) + sizeof(UploadOutcome) <= PIPE_BUF, "kMaxOutputs too large for PIPE_BUF");

/// Largest record a FrameHeader may announce: a reader refuses a frame that
/// claims more (see FrameReader::corrupt).
inline constexpr std::size_t kMaxRecordSize = PIPE_BUF - sizeof(FrameHeader);

/// Whether a record read from a pipe can be used as it is: every text
/// NUL-terminated within its array, every count within its array. A record
/// that is not comes from a broken or foreign sender and is dropped.
inline bool well_formed(const FetchRequest& r) {
  return terminated(r.stem) && r.url_length < sizeof r.url && r.url[r.url_length] == '\0' &&
         ::strnlen(r.url, sizeof r.url) == r.url_length;
}
inline bool well_formed(const FetchOutcome& r) { return terminated(r.error); }
inline bool well_formed(const ResizeOutcome& r) {
  return r.output_count <= kMaxOutputs && terminated(r.error);
}
inline bool well_formed(const UploadOutcome& r) { return well_formed(r.resize) && terminated(r.error); }

}  // namespace thumbmill
