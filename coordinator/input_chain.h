// The inputs named on the command line read one after another as one
// SourceFeed: `coordinator photos/ extra/a.jpg urls.txt -` reads the walk of
// photos/, then extra/a.jpg, then urls.txt, then standard input.
//
// Each input becomes a feed only when its turn comes (a walk starts, a list
// opens, a prefix is listed then), so a thousand list files are never open
// at once. An input that cannot be opened then (it went away since the
// start-up checks) is one failed source naming it, and the chain goes on; a
// feed that ends with a failure (a list that cannot be read, a listing that
// failed for good) ends the chain with it, as one list always did.
//
// Line numbers: a LIST's lines keep their numbers in that list, so messages
// point into it. Sources not read from a list (walked, or image files given
// as arguments) are numbered 1, 2, ... across the run, in the order taken.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/source_feed.h"

namespace thumbmill {

enum class InputKind {
  kList,       // a file of sources (or a FIFO)
  kStdin,      // "-"
  kS3Prefix,   // s3://bucket/prefix/
  kDirectory,  // walked (directory_walk_feed.h)
  kImage,      // an image file: one source itself
};

struct Input {
  InputKind kind = InputKind::kList;
  std::string arg;  // as given
};

/// Makes the feed of one input (never called for kImage).
using InputOpener = std::function<Result<std::unique_ptr<SourceFeed>>(const Input&)>;

/// The chain of `inputs`, in order, each opened by `open` when reached.
std::unique_ptr<SourceFeed> chain_inputs(std::vector<Input> inputs, InputOpener open);

}  // namespace thumbmill
