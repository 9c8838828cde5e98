#include "coordinator/inputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include "coordinator/directory_walk_feed.h"
#include "coordinator/s3_prefix_feed.h"
#include "shared/image_extensions.h"
#include "shared/s3_client.h"
#include "shared/s3_location.h"

namespace thumbmill {
namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(),
                    [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
}

/// How to give one source on standard input, for hints.
std::string echo_hint(const std::string& source) { return "echo '" + source + "' | coordinator -"; }

Status usage(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

/// The first bytes of a regular file (fewer if it is shorter). Only for
/// regular files: opening a FIFO would let its writer go on to a pipe with
/// no reader yet.
Result<std::string> head_of(const std::string& path) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return Status::FromErrno("cannot open source list " + path);
  const UniqueFd owned(fd);
  char buf[16];
  ssize_t n;
  do n = ::pread(fd, buf, sizeof buf, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) return Status::FromErrno("cannot read source list " + path);
  return std::string(buf, static_cast<std::size_t>(n));
}

Result<Input> classify(const std::string& arg, const Options& options) {
  if (arg == "-") return Input{InputKind::kStdin, arg};
  if (starts_with_nocase(arg, "http://") || starts_with_nocase(arg, "https://"))
    return usage("LIST " + arg + " is a URL, not a list file; give URLs in a list: " + echo_hint(arg));
  if (is_s3_url(arg)) {
    auto prefix = parse_s3_url(arg);
    if (!prefix.ok()) return usage("LIST: " + prefix.status().message());
    if (!prefix->key.empty() && prefix->key.back() != '/')
      return usage("LIST " + arg + " names one object, not a prefix (a prefix ends in '/'); for one object, give "
                   "it on standard input: " + echo_hint(arg));
    return Input{InputKind::kS3Prefix, arg};
  }
  struct stat st{};
  if (::stat(arg.c_str(), &st) != 0) return Status::FromErrno("cannot open " + arg);
  if (S_ISDIR(st.st_mode) || names_an_image(arg, options.extensions)) {
    const InputKind kind = S_ISDIR(st.st_mode) ? InputKind::kDirectory : InputKind::kImage;
    if (options.no_local)
      return usage(arg + " is a local " + (kind == InputKind::kDirectory ? "directory" : "file") +
                   ", and --no-local refuses local sources");
    return Input{kind, arg};
  }
  if (!S_ISREG(st.st_mode)) return Input{InputKind::kList, arg};  // a FIFO, a device: read when reached
  auto head = head_of(arg);
  if (!head.ok()) return head.status();
  if (const std::string_view format = image_signature(*head); !format.empty())
    return usage("LIST " + arg + " is a " + std::string(format) + " image, not a list file; an image is taken by " +
                 "its extension (.jpg, .png, ...): rename it, or give it in a list: " + echo_hint(arg));
  return Input{InputKind::kList, arg};
}

/// The prefix's bucket is there and readable with these settings (the
/// preflight: exit 3 otherwise).
Status check_bucket(const Options& options, const std::string& arg) {
  const S3Location prefix = *parse_s3_url(arg);
  S3Client client(options.s3, options.connect_timeout_s + 30);
  if (Status st = client.CheckBucket(prefix.bucket); !st.ok())
    return Status(st.code() == Code::kInvalidArgument ? Code::kInternal : st.code(), "LIST " + arg + ": " + st.message());
  return Status::Ok();
}

}  // namespace

std::string_view image_signature(std::string_view head) {
  if (head.starts_with("\xFF\xD8\xFF")) return "JPEG";
  if (head.starts_with("\x89PNG\r\n\x1A\n")) return "PNG";
  if (head.starts_with("GIF87a") || head.starts_with("GIF89a")) return "GIF";
  if (head.size() >= 12 && head.starts_with("RIFF") && head.substr(8, 4) == "WEBP") return "WebP";
  return {};
}

Result<std::vector<Input>> classify_inputs(const Options& options) {
  std::vector<Input> inputs;
  for (const std::string& arg : options.inputs) {
    auto input = classify(arg, options);
    if (!input.ok()) return input.status();
    inputs.push_back(std::move(*input));
  }
  return inputs;
}

Result<std::unique_ptr<SourceFeed>> open_inputs(const Options& options) {
  auto inputs = classify_inputs(options);
  if (!inputs.ok()) return inputs.status();
  for (const Input& input : *inputs)
    if (input.kind == InputKind::kS3Prefix)
      if (Status st = check_bucket(options, input.arg); !st.ok()) return st;
  // The walk skips --out; a bucket has no directory to skip.
  WalkSettings walk{options.extensions, options.out_is_s3() ? std::filesystem::path() : options.out_dir};
  auto open = [s3 = options.s3, walk](const Input& input) -> Result<std::unique_ptr<SourceFeed>> {
    switch (input.kind) {
      case InputKind::kS3Prefix:
        return open_s3_prefix_feed(s3, *parse_s3_url(input.arg), walk.extensions);
      case InputKind::kDirectory:
        return open_walk_feed(input.arg, walk);
      default:
        return open_list_feed(input.arg);
    }
  };
  return chain_inputs(std::move(*inputs), std::move(open));
}

}  // namespace thumbmill
