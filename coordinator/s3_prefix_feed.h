// The sources under an S3 prefix: a LIST of the form s3://bucket/prefix/.
//
// The prefix is listed page by page (ListObjectsV2) on a thread of its own,
// which writes each object as a line "s3://bucket/key" into a pipe that the
// loop reads like any list file (source_feed.h): the first thumbnails are
// made before the listing ends, and what is held of a prefix of a million
// objects is one page and the pipe. Keys are taken by extension
// (has_extension, shared/image_extensions.h: --ext), as a directory of
// photos would be; keys a list line
// cannot carry (a control character, leading or trailing blanks) are
// skipped and counted on stderr. A listing that fails for good (after
// retries) ends the feed with that failure, which ends the run as fatal.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coordinator/source_feed.h"
#include "shared/aws_config.h"
#include "shared/image_extensions.h"
#include "shared/s3_location.h"

namespace thumbmill {

/// Starts listing `prefix` (its key "" or ending in '/'), taking the keys
/// with one of `extensions` (default_image_extensions() unless --ext). The
/// thread ends with the feed (its pipe closes under it).
Result<std::unique_ptr<SourceFeed>> open_s3_prefix_feed(const S3Settings& settings, const S3Location& prefix,
                                                        std::vector<std::string> extensions);

}  // namespace thumbmill
