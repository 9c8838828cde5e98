// Status and Result<T>: how recoverable failures travel, after LevelDB.
//
// A failure that ends one source (a 404, a truncated JPEG, a full disk) is a
// value, not an exception: it is carried to the report with a code a program
// can branch on and a message a person can act on. Exceptions thrown by
// libraries (vips::VError, Boost.Interprocess, CLI11) are caught at the
// boundary that owns them and turned into a Status there.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace thumbmill {

enum class Code : int {
  kOk = 0,
  kInvalidArgument,  // bad option, malformed list line, unsupported scheme
  kIoError,          // a syscall failed (errno in the message)
  kNetwork,          // connection refused, DNS, TLS, reset
  kTimeout,          // connect, overall or low-speed timeout; job deadline
  kHttpStatus,       // the server answered with a non-2xx status
  kBlockedAddress,   // the address policy refused the peer (link-local, private)
  kTooLarge,         // body over --max-bytes
  kNotAnImage,       // empty body, HTML, random bytes: no loader matches
  kUntrustedFormat,  // a loader libvips does not trust with hostile input
  kTooManyPixels,    // the header declares more than --max-pixels
  kTooMuchMemory,    // decoding would need more than --max-decode-mb, or ran out
  kCorruptImage,     // the decoder failed part-way (truncated, damaged)
  kEncodeFailed,     // the saver failed
  kWorkerCrashed,    // the process that held the job died
  kInterrupted,      // the run was stopped before this source finished
  kPoison,           // a batch job every node that took it died on (--max-deliveries)
  kInternal,
};

/// Short stable name of a code, e.g. "http-status"; used in the report.
std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  /// "context: strerror(err)", with code kIoError.
  static Status FromErrno(std::string_view context, int err = errno);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "ok" or the message (which already says what failed and why).
  std::string ToString() const { return ok() ? "ok" : message_; }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

/// Either a T or a failed Status. REQUIRES: the Status given is not ok.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {}

  bool ok() const { return v_.index() == 0; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  /// The failure; an ok Status when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace thumbmill
