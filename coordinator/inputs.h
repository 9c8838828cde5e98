// The command line's inputs, checked at start-up and read as one feed.
//
// Each argument, in order, is one of (input_chain.h):
//  - "-": the list on standard input;
//  - s3://bucket/prefix/: every object under the prefix with an --ext
//    extension (s3_prefix_feed.h); the bucket is checked now (exit 3 if it
//    is not there or not readable);
//  - a directory: walked (directory_walk_feed.h), never into --out;
//  - a file whose extension is an image's (names_an_image): one source;
//  - any other file: a LIST, one source per line.
// Usage errors (kInvalidArgument, exit 2), each with a hint: a URL where a
// LIST was expected; a LIST whose first bytes are a JPEG, PNG, WebP or GIF
// image's; one S3 object instead of a prefix; a directory or image file
// with --no-local. An argument that does not exist or cannot be read is a
// kIoError naming it (exit 2 too).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "coordinator/input_chain.h"
#include "shared/options.h"

namespace thumbmill {

/// The image format whose signature starts `head` ("JPEG", "PNG", "WebP",
/// "GIF"), or "" for none.
std::string_view image_signature(std::string_view head);

/// Classifies every one of options.inputs; the first one that is refused
/// ends the check with its message. Touches no network.
Result<std::vector<Input>> classify_inputs(const Options& options);

/// classify_inputs, the S3 buckets of the prefixes checked, and the chain
/// that reads them in order (S3 settings must be resolved in `options`).
Result<std::unique_ptr<SourceFeed>> open_inputs(const Options& options);

}  // namespace thumbmill
