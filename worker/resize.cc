// Resize: the libvips side of a job. See resize.h for the contract.
//
// Both kinds of source (bytes in memory, a file path) are wrapped in a
// VipsSource, so one code path sniffs, checks the header and decodes them;
// vips_source_new_from_memory does not copy the bytes.
//
// libvips 8.14.1 facts this file leans on (checked on this machine):
// - vips_thumbnail_buffer/_source accept `fail_on` but never pass it to the
//   loader (libvips issue #5195); only the file form does. We pass it in the
//   loader's option string, which the source form does forward. Without it a
//   truncated JPEG comes out as a grey-padded "success".
// - vips_foreign_find_load_* still returns a loader that
//   vips_block_untrusted_set has blocked; the load then fails with
//   "<loader>: operation is blocked". The poppler loader even parses the PDF
//   before it checks the block. So untrusted loaders are refused here, by
//   their class flags, before any of them sees a byte.
// - The libvips error buffer is one per process, not per thread: in the
//   threaded build a message may carry another job's text, or lose its own
//   to another job's clear. The codes are always right; they come from
//   return values, not from the buffer.
#include "worker/resize.h"

#include "shared/wire.h"
#include "worker/decode_estimate.h"
#include "worker/encode.h"
#include "worker/geometry.h"
#include "worker/orc_guard.h"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <vips/vips8>

namespace thumbmill {
namespace {

using vips::VError;
using vips::VImage;
using vips::VSource;

// Passed to every loader through the option string (see the file comment).
// ERROR, not WARNING: it fails truncated and undecodable files, while
// warnings that many camera and editor JPEGs carry ("extraneous bytes before
// marker") and PNGs carry ("known incorrect sRGB profile") still pass.
// Entropy-coded JPEG damage that libjpeg recovers from is a warning too, so
// it passes as a visibly damaged thumbnail.
constexpr VipsFailOn kFailOn = VIPS_FAIL_ON_ERROR;
constexpr const char* kLoaderOptions = "fail_on=error";

/// What the header says, as far as decoding needs it.
struct SourceInfo {
  Dims upright;  // the size once EXIF orientation is applied
  // 8.14.1 thumbnail converts CMYK with its built-in profile and ignores an
  // embedded one (fixed in 8.14.2); only its linear path imports with the
  // embedded profile. Measured: default path off by 11 levels in green for
  // a SWOP-like profile, linear path within 3.
  bool cmyk_with_profile = false;
  // Whether colour management is needed at all: an embedded profile to
  // honour, or CMYK to convert. Building an lcms transform costs ~15% of a
  // 12 MP thumbnail, so untagged sRGB images (most photos) skip it.
  bool needs_colour_transform = false;
  // How it decodes, for the memory estimate once the largest size is known.
  DecodePlan plan;
};

// ---------------------------------------------------------------------------
// libvips errors

/// One line of the libvips error buffer: "VipsJpeg: Premature end of input
/// file" is domain "VipsJpeg", text "Premature end of input file".
struct VipsErrorLine {
  std::string domain;
  std::string text;
};

/// The first line of the libvips error buffer (`fallback` when it is empty),
/// and clears the buffer so the next job starts clean.
VipsErrorLine take_vips_error(std::string_view fallback = "unknown libvips error") {
  std::string_view text = vips_error_buffer();
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  if (text.empty()) text = fallback;
  VipsErrorLine line;
  const auto colon = text.find(": ");
  if (colon != std::string_view::npos && text.substr(0, colon).find(' ') == std::string_view::npos) {
    line.domain = text.substr(0, colon);
    text.remove_prefix(colon + 2);
  }
  line.text = text;
  vips_error_clear();
  return line;
}

/// "svgload_source" -> "svg".
std::string format_of_loader(std::string_view nickname) {
  return std::string(nickname.substr(0, nickname.find("load")));
}

Status untrusted_format(std::string_view format) {
  return Status(Code::kUntrustedFormat, "untrusted format " + std::string(format) +
                                            " blocked (pass --allow-untrusted-formats)");
}

/// "context: <first libvips error line>" with `code`. A load that failed
/// because its loader is blocked is kUntrustedFormat whatever `code` is (a
/// second line of defence: check_loader refuses those loaders first); one
/// that ran out of memory is kTooMuchMemory, "out of memory: ...".
Status vips_failure(Code code, std::string_view context, std::string_view fallback) {
  const VipsErrorLine line = take_vips_error(fallback);
  if (line.text == "operation is blocked") return untrusted_format(format_of_loader(line.domain));
  if (says_out_of_memory(line.text)) return out_of_memory(line.text);
  return Status(code, std::string(context) + ": " + line.text);
}

/// Runs `step` (libvips C++ calls that throw VError), turning a throw into
/// vips_failure(code, context).
template <class Step>
auto vips_step(Code code, std::string_view context, Step&& step)
    -> Result<decltype(step())> {
  try {
    return step();
  } catch (const VError& error) {
    return vips_failure(code, context, error.what());
  } catch (const std::bad_alloc&) {
    vips_error_clear();
    return out_of_memory(std::string(context) + ": std::bad_alloc");
  }
}

// ---------------------------------------------------------------------------
// Opening and identifying the source

Result<VSource> open_source(const ImageSource& source) {
  if (source.path.empty()) {
    if (source.bytes.empty()) return Status(Code::kNotAnImage, "empty body (0 bytes)");
    return vips_step(Code::kInternal, "cannot wrap the body", [&] {
      return VSource::new_from_memory(source.bytes.data(), source.bytes.size());
    });
  }
  // Checked here so a missing or unreadable file is an I/O error with errno,
  // not a libvips message.
  const int fd = ::open(source.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + source.path);
  ::close(fd);
  return vips_step(Code::kIoError, "open " + source.path,
                   [&] { return VSource::new_from_file(source.path.c_str()); });
}

std::string hex_bytes(std::string_view bytes) {
  std::string out;
  char digits[4];
  for (unsigned char c : bytes) {
    std::snprintf(digits, sizeof digits, out.empty() ? "%02x" : " %02x", c);
    out += digits;
  }
  return out;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

bool looks_like_html(std::string_view text) {
  for (std::string_view tag : {"<!doctype html", "<html", "<head", "<body", "<title", "<meta",
                               "<!--", "<script"}) {
    if (starts_with_nocase(text, tag)) return true;
  }
  return false;
}

bool is_text(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](unsigned char c) {
    return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
  });
}

/// Why `head` (the first bytes of a source no loader claims) is not an
/// image, in words a person can act on: the kind of bytes found (an HTML
/// page, JSON, some text, unknown) and at most kShownBytes of them in hex.
/// Never the bytes as text: a list from untrusted hands may name a local
/// file or redirect to an internal page, and the report must not echo it.
std::string describe_non_image(std::string_view head) {
  constexpr std::size_t kShownBytes = 4;
  std::string_view text = head;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM
  text.remove_prefix(std::min(text.size(), text.find_first_not_of(" \t\r\n")));
  const std::string shown = "(first bytes " + hex_bytes(head.substr(0, kShownBytes)) + ")";
  if (!head.empty() && is_text(head)) {
    const char* kind = looks_like_html(text)                                     ? "HTML"
                       : text.starts_with('{') || text.starts_with('[') ? "JSON"
                                                                                 : "text";
    return std::string("not an image: looks like ") + kind + " " + shown;
  }
  return "not an image: unknown format " + shown;
}

/// The format `head` claims by its magic bytes, for the formats libvips
/// reads here; empty when it claims none. Used only when no loader accepted
/// the bytes: a TIFF cut short, say, fails the TIFF loader's own sniffing.
std::string_view claimed_format(std::string_view head) {
  struct Magic {
    std::size_t at;
    std::string_view bytes;
    std::string_view format;
  };
  static constexpr Magic kMagic[] = {
      {0, "\xFF\xD8\xFF", "JPEG"},  {0, "\x89PNG\r\n\x1a\n", "PNG"}, {0, "GIF8", "GIF"},
      {8, "WEBP", "WebP"},           {0, {"II*\0", 4}, "TIFF"},      {0, {"MM\0*", 4}, "TIFF"},
      {4, "ftyp", "HEIF/AVIF"},
  };
  for (const Magic& magic : kMagic) {
    if (head.substr(std::min(head.size(), magic.at)).starts_with(magic.bytes)) return magic.format;
  }
  return {};
}

/// The loader libvips would pick for `source`, checked against the trust
/// policy. A loader flagged untrusted is refused unless `allow_untrusted`,
/// and a blocked one always (the process blocked it in init_vips).
Status check_loader(const VSource& source, std::string_view origin, bool allow_untrusted) {
  unsigned char* sniffed = nullptr;
  const gint64 length = vips_source_sniff_at_most(source.get_source(), &sniffed, 64);
  if (length <= 0) {
    vips_error_clear();
    return Status(Code::kNotAnImage, "empty " + std::string(origin) + " (0 bytes)");
  }
  // Copied: the next sniff (inside find_load) may reuse the sniff buffer.
  const std::string head(reinterpret_cast<const char*>(sniffed), static_cast<std::size_t>(length));
  const char* loader = vips_foreign_find_load_source(source.get_source());
  if (loader == nullptr) {
    vips_error_clear();
    if (std::string_view format = claimed_format(head); !format.empty()) {
      return Status(Code::kCorruptImage, "corrupt image: starts like " + std::string(format) +
                                             " but no loader accepts it");
    }
    return Status(Code::kNotAnImage, describe_non_image(head));
  }
  auto* klass = static_cast<VipsOperationClass*>(g_type_class_ref(g_type_from_name(loader)));
  const VipsOperationFlags flags = klass->flags;
  const std::string format = format_of_loader(VIPS_OBJECT_CLASS(klass)->nickname);
  g_type_class_unref(klass);
  const bool refused = (flags & VIPS_OPERATION_BLOCKED) ||
                       ((flags & VIPS_OPERATION_UNTRUSTED) && !allow_untrusted);
  return refused ? untrusted_format(format) : Status::Ok();
}

/// Opens the header only (sequential access decodes no pixels). Fails with
/// kTooManyPixels when the declared size is over `max_pixels`.
Result<SourceInfo> check_header(const VSource& source, std::uint64_t max_pixels, bool no_rotate) {
  auto header = vips_step(Code::kCorruptImage, "corrupt image", [&] {
    return VImage::new_from_source(
        source, kLoaderOptions,
        VImage::option()->set("access", static_cast<int>(VIPS_ACCESS_SEQUENTIAL)));
  });
  if (!header.ok()) return header.status();
  const Dims stored{header->width(), header->height()};
  const std::uint64_t pixels =
      static_cast<std::uint64_t>(stored.width) * static_cast<std::uint64_t>(stored.height);
  if (pixels > max_pixels) {
    char message[160];
    std::snprintf(message, sizeof message,
                  "image declares %dx%d (%.1f MP), over --max-pixels %.1f MP", stored.width,
                  stored.height, pixels / 1e6, max_pixels / 1e6);
    return Status(Code::kTooManyPixels, message);
  }
  SourceInfo info;
  // EXIF orientations 5-8 swap the sides (unless --no-rotate).
  info.upright = !no_rotate && vips_image_get_orientation_swap(header->get_image())
                     ? Dims{stored.height, stored.width}
                     : stored;
  const bool cmyk = header->interpretation() == VIPS_INTERPRETATION_CMYK;
  const bool profiled = header->get_typeof(VIPS_META_ICC_NAME) != 0;
  info.cmyk_with_profile = cmyk && profiled;
  info.needs_colour_transform = cmyk || profiled;
  info.plan = plan_decode(header->get_image());
  return info;
}

// ---------------------------------------------------------------------------
// Sizes and decoding

/// Index of the size whose decode scales the source most; every other size
/// can be derived from that decode (worker/geometry.h).
std::size_t largest_size(Dims source, const ResizeSettings& settings) {
  const auto& sizes = settings.sizes;
  std::size_t best = 0;
  for (std::size_t i = 1; i < sizes.size(); ++i) {
    if (decode_scale(source, sizes[i], settings.geometry) >
        decode_scale(source, sizes[best], settings.geometry)) {
      best = i;
    }
  }
  return best;
}

/// Fails with kTooMuchMemory when decoding to `spec` is estimated to need
/// more than max_decode_bytes, and with kTooManyPixels when --upscale would
/// make more than max_pixels; decided from the header, before a pixel is
/// decoded.
Status check_decode_memory(const SourceInfo& info, SizeSpec spec, const ResizeSettings& settings) {
  const double scale = decode_scale(info.upright, spec, settings.geometry);
  const Dims out = scaled(info.upright, scale);
  const std::uint64_t pixels = static_cast<std::uint64_t>(out.width) * static_cast<std::uint64_t>(out.height);
  if (pixels > settings.max_pixels) {
    char message[160];
    std::snprintf(message, sizeof message, "--upscale to %dx%d (%.1f MP) is over --max-pixels %.1f MP",
                  out.width, out.height, pixels / 1e6, settings.max_pixels / 1e6);
    return Status(Code::kTooManyPixels, message);
  }
  return check_decode_plan(info.plan, std::min(scale, 1.0), info.cmyk_with_profile, out.width + 1,
                           out.height + 1, settings.max_decode_bytes);
}

VipsInteresting interesting_of(Crop crop) {
  switch (crop) {
    case Crop::kAttention: return VIPS_INTERESTING_ATTENTION;
    case Crop::kEntropy: return VIPS_INTERESTING_ENTROPY;
    case Crop::kCentre: break;
  }
  return VIPS_INTERESTING_CENTRE;
}

VipsSize size_of(ThumbnailBox::Mode mode) {
  switch (mode) {
    case ThumbnailBox::Mode::kBoth: return VIPS_SIZE_BOTH;
    case ThumbnailBox::Mode::kForce: return VIPS_SIZE_FORCE;
    case ThumbnailBox::Mode::kDown: break;
  }
  return VIPS_SIZE_DOWN;
}

/// The thumbnail options for `box` (its width is thumbnail's argument).
/// no_rotate is passed to both calls: with --no-rotate the decoded image
/// keeps its orientation tag, which the derive would otherwise apply.
vips::VOption* box_options(const ThumbnailBox& box, const ResizeSettings& settings) {
  vips::VOption* options = VImage::option()
                               ->set("height", box.height)
                               ->set("size", static_cast<int>(size_of(box.mode)))
                               ->set("no_rotate", settings.no_rotate);
  if (box.crop) options->set("crop", static_cast<int>(interesting_of(settings.geometry.crop)));
  return options;
}

/// The one decode: shrink-on-load straight to `box`, EXIF orientation
/// applied (unless --no-rotate), colour converted as settings.profile says,
/// then copied to memory. Decoding is lazy, so a truncated file fails here,
/// at the copy.
Result<VImage> decode(const VSource& source, const SourceInfo& info, const ThumbnailBox& box,
                      const ResizeSettings& settings) {
  return vips_step(Code::kCorruptImage, "corrupt image", [&] {
    vips::VOption* options = box_options(box, settings)
                                 ->set("option_string", kLoaderOptions)
                                 ->set("fail_on", static_cast<int>(kFailOn))
                                 ->set("linear", info.cmyk_with_profile);
    switch (settings.profile) {
      case Profile::kSrgb:
        // export_profile: without it an embedded profile (Adobe RGB, ...)
        // is ignored and the colours come out dull.
        if (info.needs_colour_transform) options->set("export_profile", "srgb");
        break;
      case Profile::kKeep:
        // No export_profile: the pixels and the embedded profile stay as
        // they are (CMYK is still converted to sRGB: no output holds it).
        break;
      case Profile::kP3:
        // libvips's built-in "p3" profile; an untagged source is sRGB.
        options->set("import_profile", "srgb")->set("export_profile", "p3");
        break;
    }
    return VImage::thumbnail_source(source, box.width, options).copy_memory();
  });
}

/// `box` made from the decoded (in-memory, already upright) image.
Result<VImage> derive(const VImage& decoded, const ThumbnailBox& box, const ResizeSettings& settings) {
  return vips_step(Code::kInternal, "resize failed", [&] {
    return decoded.thumbnail_image(box.width, box_options(box, settings)).copy_memory();
  });
}

// ---------------------------------------------------------------------------
// Encoding

Result<EncodedThumbnail> encode(const VImage& image, SizeSpec spec, Format format, const ResizeSettings& settings) {
  const std::string context = "encode " + std::string(format_name(format)) + " failed";
  return vips_step(Code::kEncodeFailed, context, [&] {
    return EncodedThumbnail{spec, format, image.width(), image.height(), encode_image(image, format, settings)};
  });
}

Status check_settings(const ResizeSettings& settings) {
  if (settings.sizes.empty()) return Status(Code::kInvalidArgument, "no thumbnail sizes requested");
  if (settings.formats.empty()) return Status(Code::kInvalidArgument, "no output format requested");
  for (const SizeSpec& spec : settings.sizes) {
    if (spec.width <= 0 || spec.height < 0) {
      return Status(Code::kInvalidArgument, "bad thumbnail size " + spec.label());
    }
  }
  return Status::Ok();
}

}  // namespace

ResizeSettings ResizeSettings::From(const Options& options) {
  ResizeSettings settings;
  settings.sizes = options.sizes;
  settings.formats = options.formats;
  settings.quality = options.quality;
  settings.max_pixels = options.max_pixels;
  settings.max_decode_bytes = static_cast<std::uint64_t>(options.max_decode_mb) << 20;
  settings.allow_untrusted_formats = options.allow_untrusted_formats;
  settings.geometry = Geometry{options.fit, options.crop, options.upscale};
  settings.no_rotate = options.no_rotate;
  settings.profile = options.profile;
  settings.keep = options.keep;
  settings.progressive = options.progressive;
  settings.optimize_coding = options.optimize_coding;
  settings.effort = options.effort;
  settings.lossless = options.lossless;
  return settings;
}

Status init_vips(const char* argv0, bool allow_untrusted_formats) {
  static std::once_flag once;
  static Status started;
  std::call_once(once, [&] {
    // libvips allocates and frees pixel buffers of a few hundred KiB for
    // every image. Above glibc's mmap threshold each is a fresh mmap: a
    // zero-filled page fault per 4 KiB, and in the threaded build a TLB
    // shootdown on the other core at every munmap. Keeping them in the heap
    // measured ~0.6 s less system time over 200 12 MP photos (threaded build).
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 64 << 20);
    // Decoder warnings ("not enough data", "ignoring nclx profile") would
    // scribble over the coordinator's progress line; the per-source outcome
    // already says what matters. VIPS_WARNING=1 in the environment keeps them.
    ::setenv("VIPS_WARNING", "0", /*overwrite=*/0);
    if (std::string_view(::getenv("VIPS_WARNING")) != "0") ::unsetenv("VIPS_WARNING");
    if (VIPS_INIT(argv0) != 0) {
      started = Status(Code::kInternal, "cannot start libvips: " + take_vips_error().text);
      return;
    }
    // A build that lost the interposition (a new link, a static libvips)
    // would crash now and then in the threaded build; say so at once instead.
    if (!orc_guard_installed()) {
      started = Status(Code::kInternal, "libvips's calls into liborc bypass worker/orc_guard.cc (see orc_guard.h)");
      return;
    }
    // One worker per core already: a libvips thread pool each would
    // oversubscribe the machine.
    vips_concurrency_set(1);
    // Every job is a different image; a cache only holds memory and files.
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    vips_block_untrusted_set(allow_untrusted_formats ? FALSE : TRUE);
  });
  return started;
}

Result<std::vector<EncodedThumbnail>> make_thumbnails(const ImageSource& source,
                                                      const ResizeSettings& settings) {
  vips_error_clear();  // a stale message from an earlier job must not leak in
  if (Status valid = check_settings(settings); !valid.ok()) return valid;

  Result<VSource> opened = open_source(source);
  if (!opened.ok()) return opened.status();
  const char* origin = source.path.empty() ? "body" : "file";
  if (Status loader = check_loader(*opened, origin, settings.allow_untrusted_formats); !loader.ok()) {
    return loader;
  }
  Result<SourceInfo> info = check_header(*opened, settings.max_pixels, settings.no_rotate);
  if (!info.ok()) return info.status();

  const std::size_t largest = largest_size(info->upright, settings);
  if (Status memory = check_decode_memory(*info, settings.sizes[largest], settings); !memory.ok()) {
    return memory;
  }
  const ThumbnailBox decoded_as = decode_box(info->upright, settings.sizes[largest], settings.geometry);
  Result<VImage> decoded = decode(*opened, *info, decoded_as, settings);
  if (!decoded.ok()) return decoded.status();

  std::vector<EncodedThumbnail> out;
  out.reserve(settings.sizes.size() * settings.formats.size());
  for (const SizeSpec spec : settings.sizes) {
    // Every size is derived from the decode, except one the decode already is.
    const ThumbnailBox box = final_box(info->upright, spec, settings.geometry);
    Result<VImage> resized = box == decoded_as ? Result<VImage>(*decoded) : derive(*decoded, box, settings);
    if (!resized.ok()) return resized.status();
    for (Format format : settings.formats) {
      Result<EncodedThumbnail> encoded = encode(*resized, spec, format, settings);
      if (!encoded.ok()) return encoded.status();
      out.push_back(std::move(encoded).value());
    }
  }
  return out;
}

}  // namespace thumbmill
