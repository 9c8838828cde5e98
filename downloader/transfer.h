// Transfer: one source from request to outcome, across its tries. It holds
// what the current try has learned (the response being read, bytes counted
// against the try's bounds, whether it is paused for want of queue room, why
// it was stopped) and receives libcurl's callbacks for its easy handle:
// header lines, body bytes (into its Body), progress, and the opening of
// every socket (checked by downloader/address_policy.h before connect).
//
// Bounds: every byte read in a try (header lines of every response,
// redirect and error bodies libcurl reads and discards, the body) counts
// against Options::max_bytes plus kOverheadAllowance; the body itself
// against Options::max_bytes. A callback that stops the try records why in
// `abort`, and EndOfTry reports that whatever libcurl says afterwards.
//
// The Fetcher (fetcher.cc) owns the transfers, the handles and the timers;
// a Transfer never touches the multi handle.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "downloader/body.h"
#include "downloader/curl_errors.h"
#include "downloader/fetch_context.h"
#include "downloader/http_response.h"
#include "shared/options.h"
#include "shared/s3_request.h"
#include "shared/status.h"
#include "shared/wire.h"

namespace thumbmill::fetch {

/// A transfer paused this long for want of a slot or arena room goes to a
/// spill file instead: the workers may be busy for a long time, and the
/// server must not be kept waiting into a timeout.
inline constexpr std::int64_t kMaxPauseMs = 2000;
/// What a try may receive beyond --max-bytes: the headers of its responses
/// and the bodies of redirects and errors that libcurl reads and discards
/// (it reads a redirect's whole body to keep the connection). The body that
/// becomes the source is held to --max-bytes itself.
inline constexpr std::uint64_t kOverheadAllowance = 64 * 1024;

enum class Phase { kRunning, kRetryWait, kPublishWait, kDone };

struct Transfer {
  Transfer(const Context& ctx, const FetchRequest& request);
  ~Transfer() { curl_slist_free_all(headers); }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  const Context& ctx;
  const std::uint64_t source_id;
  const SourceKind kind;
  const std::string stem;
  const std::string url;  // or the local path
  // A conditional request (validators from an earlier run), sent on every try.
  const std::string if_none_match;
  const std::string if_modified_since;
  curl_slist* headers = nullptr;  // the conditional headers, built once
  CurlHeaders s3_headers;         // an s3:// source's signed headers, made for each try
  Body body;

  bool conditional() const { return !if_none_match.empty() || !if_modified_since.empty(); }

  Phase phase = Phase::kRunning;
  int tries = 0;
  std::int64_t first_start_ms = 0;
  std::int64_t retry_at_ms = 0;

  // The current try.
  CURL* easy = nullptr;
  Response response;
  std::uint64_t received = 0;
  // Every byte libcurl read for this try, over all its responses: header
  // lines (counted in OnHeaderLine) and body bytes, kept or discarded
  // (libcurl's download counter, which restarts at each redirect hop).
  std::uint64_t header_bytes = 0;
  std::uint64_t body_bytes_earlier_hops = 0;
  std::uint64_t body_bytes_this_hop = 0;
  bool paused = false;
  std::int64_t paused_since_ms = 0;
  std::optional<TryEnd> abort;  // set by a callback that stopped the try
  // Set when the address policy refused a connection of this try; it is the
  // reason only if the try then failed to connect (another address of the
  // same name may have been allowed).
  std::optional<Status> blocked;
  char errbuf[CURL_ERROR_SIZE] = {};

  /// Counts a new try and forgets everything the last one learned (its
  /// body included). REQUIRES: no easy handle attached.
  void BeginTry();
  /// Points `easy` (set up by configure_handle) at this transfer for the
  /// current try: URL, callback data, error buffer, conditional headers.
  void Attach(CURL* easy);
  /// How the try that libcurl just finished with `result` ended.
  TryEnd EndOfTry(CURLcode result) const;

  // libcurl callbacks (through the functions configure_handle installs).
  bool OnHeaderLine(std::string_view line);
  std::size_t OnBody(std::string_view data);
  bool OnProgress(curl_off_t body_bytes_now);

 private:
  std::string SpillPath() const;
  bool OnHeadersDone();
  /// Bytes read from the network in this try so far.
  std::uint64_t wire_bytes() const { return header_bytes + body_bytes_earlier_hops + body_bytes_this_hop; }
  /// False (and `abort` set) once wire_bytes() is past the try's bound.
  bool WithinWireBound();
};

/// The settings every easy handle keeps across tries and transfers: http(s)
/// only, bounded redirects and time, no signals, and the callbacks that
/// reach the Transfer set by Transfer::Attach.
void configure_handle(CURL* easy, const Options& options);

}  // namespace thumbmill::fetch
