// Which file names and S3 keys are taken as images, by their extension: the
// one rule behind a directory walk, an image file given as an argument, and
// an s3://bucket/prefix/ listing. --ext replaces the default list.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"

namespace thumbmill {

/// The extensions taken when --ext is not given, lowercase, without dots:
/// jpg jpeg jpe png webp gif tif tiff avif heic heif jxl.
std::vector<std::string> default_image_extensions();

/// Whether `name` ends in "." followed by one of `extensions` (lowercase,
/// without dots), ignoring ASCII case: "IMG_1.JPG" has "jpg". A name that is
/// only the extension (".jpg") has none.
bool has_extension(std::string_view name, const std::vector<std::string>& extensions);

/// Whether a file named on the command line is an image (a source itself)
/// rather than a LIST: its extension is a default image extension or one of
/// `extensions` (--ext), so `--ext png photo.jpg` still takes photo.jpg.
bool names_an_image(std::string_view name, const std::vector<std::string>& extensions);

/// One --ext value: "jpg,PNG,.webp" -> {"jpg", "png", "webp"} (lowercased,
/// a leading dot dropped, repeats dropped, order kept). An empty item, or one
/// holding '.', '/' or a blank, is kInvalidArgument naming it.
Result<std::vector<std::string>> parse_extensions(std::string_view text);

}  // namespace thumbmill
