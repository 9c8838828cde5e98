// libvips failures as Status values: the first line of libvips' error
// buffer, read and cleared, with the code the caller names.
//
// The libvips error buffer is one per process, not per thread: in the
// threaded build a message may carry another job's text, or lose its own to
// another job's clear. The codes are always right; they come from return
// values, not from the buffer.
#pragma once

#include <new>
#include <string>
#include <string_view>

#include <vips/vips8>

#include "shared/status.h"
#include "worker/decode_estimate.h"

namespace thumbmill {

/// One line of the libvips error buffer: "VipsJpeg: Premature end of input
/// file" is domain "VipsJpeg", text "Premature end of input file".
struct VipsErrorLine {
  std::string domain;
  std::string text;
};

/// The first line of the libvips error buffer (`fallback` when it is empty),
/// and clears the buffer so the next job starts clean.
VipsErrorLine take_vips_error(std::string_view fallback = "unknown libvips error");

/// "svgload_source" -> "svg".
std::string format_of_loader(std::string_view nickname);

/// kUntrustedFormat: "untrusted format svg blocked (pass --allow-untrusted-formats)".
Status untrusted_format(std::string_view format);

/// "context: <first libvips error line>" with `code`. A load that failed
/// because its loader is blocked is kUntrustedFormat whatever `code` is (a
/// second line of defence: check_loader refuses those loaders first); one
/// that ran out of memory is kTooMuchMemory, "out of memory: ...".
Status vips_failure(Code code, std::string_view context, std::string_view fallback);

/// Runs `step` (libvips C++ calls that throw VError), turning a throw into
/// vips_failure(code, context).
template <class Step>
auto vips_step(Code code, std::string_view context, Step&& step) -> Result<decltype(step())> {
  try {
    return step();
  } catch (const vips::VError& error) {
    return vips_failure(code, context, error.what());
  } catch (const std::bad_alloc&) {
    vips_error_clear();
    return out_of_memory(std::string(context) + ": std::bad_alloc");
  }
}

}  // namespace thumbmill
