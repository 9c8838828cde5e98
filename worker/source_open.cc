// source_open.h says what this does and which libvips facts it leans on.
#include "worker/source_open.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <string>
#include <utility>

#include "worker/vips_errors.h"

namespace thumbmill {
namespace {

using vips::VImage;
using vips::VSource;

/// The local file `fd` whole when it is a JPEG (by its first bytes) of at
/// most kReadWholeJpegBytes; empty otherwise or on any read error (libvips
/// then reads it, and reports what goes wrong).
std::vector<std::byte> read_small_jpeg(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 3 || st.st_size > kReadWholeJpegBytes) {
    return {};
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};  // shrank under us: let libvips see what is there
    got += static_cast<std::size_t>(n);
    if (got >= 3 && (bytes[0] != std::byte{0xFF} || bytes[1] != std::byte{0xD8} || bytes[2] != std::byte{0xFF})) {
      return {};
    }
  }
  return bytes;
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

}  // namespace

Result<OpenedSource> open_source(const ImageSource& source) {
  std::span<const std::byte> bytes = source.bytes;
  std::vector<std::byte> held;  // moving a vector keeps its buffer: `bytes` stays valid
  if (source.path.empty()) {
    if (bytes.empty()) return Status(Code::kNotAnImage, "empty body (0 bytes)");
  } else {
    // Opened here so a missing or unreadable file is an I/O error with
    // errno, not a libvips message.
    const int fd = ::open(source.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno("open " + source.path);
    held = read_small_jpeg(fd);
    ::close(fd);
    bytes = held;
  }
  auto wrapped = bytes.empty() ? vips_step(Code::kIoError, "open " + source.path,
                                           [&] { return VSource::new_from_file(source.path.c_str()); })
                               : vips_step(Code::kInternal, "cannot wrap the body", [&] {
                                   return VSource::new_from_memory(bytes.data(), bytes.size());
                                 });
  if (!wrapped.ok()) return wrapped.status();
  return OpenedSource{std::move(wrapped).value(), bytes, std::move(held)};
}

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
  info.stored = stored;
  // EXIF orientations 5-8 swap the sides (unless --no-rotate).
  info.swap = !no_rotate && vips_image_get_orientation_swap(header->get_image());
  info.upright = info.swap ? Dims{stored.height, stored.width} : stored;
  const bool cmyk = header->interpretation() == VIPS_INTERPRETATION_CMYK;
  const bool profiled = header->get_typeof(VIPS_META_ICC_NAME) != 0;
  info.cmyk_with_profile = cmyk && profiled;
  info.needs_colour_transform = cmyk || profiled;
  info.plan = plan_decode(header->get_image());
  const char* loader = nullptr;
  info.plain_jpeg = vips_image_get_string(header->get_image(), VIPS_META_LOADER, &loader) == 0 &&
                    std::string_view(loader) == "jpegload_source" && !cmyk && !profiled &&
                    header->format() == VIPS_FORMAT_UCHAR && header->coding() == VIPS_CODING_NONE &&
                    (header->bands() == 1 || header->bands() == 3);
  vips_error_clear();
  return info;
}

}  // namespace thumbmill
