// Images for the resizer's tests, made in memory with libvips itself, and
// the few helpers both resize suites (resize_test, resize_options_test)
// read them with. Header-only: those suites link only the worker library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include <vips/vips8>

#include "shared/options.h"
#include "worker/resize.h"

namespace thumbmill::test_images {

using vips::VImage;
using Bytes = std::vector<std::byte>;

/// `image` as 8-bit sRGB.
inline VImage as_srgb(const VImage& image) {
  return image.cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_sRGB)));
}

/// A colour image that compresses like a photo: noise on a gradient, so a
/// truncation cuts real entropy-coded data and the encoders work as on one.
inline VImage noisy_photo(int width, int height) {
  std::vector<VImage> bands;
  for (int band = 0; band < 3; ++band) {
    // Seeded: the same photo every run, so a test that cuts or scribbles
    // on its encoding meets the same bytes every time.
    VImage noise = VImage::gaussnoise(width, height,
                                      VImage::option()->set("sigma", 30)->set("mean", 0)->set("seed", band + 1));
    VImage ramp = VImage::xyz(width, height)[band % 2] * (200.0 / std::max(width, height)) + 28;
    bands.push_back(ramp + noise);
  }
  return as_srgb(VImage::bandjoin(bands));
}

/// `image` saved with the saver for `suffix` (".jpg", ".png", ...).
inline Bytes encode_as(const VImage& image, const char* suffix, vips::VOption* options = nullptr) {
  void* buffer = nullptr;
  std::size_t length = 0;
  image.write_to_buffer(suffix, &buffer, &length, options);
  const auto* data = static_cast<const std::byte*>(buffer);
  Bytes bytes(data, data + length);
  g_free(buffer);
  return bytes;
}

/// The encoded `bytes` decoded, into memory.
inline VImage decode(const Bytes& bytes) {
  return VImage::new_from_buffer(bytes.data(), bytes.size(), "").copy_memory();
}

/// Settings for `sizes` in one format, every other knob at its default.
inline ResizeSettings settings_with(std::vector<SizeSpec> sizes, Format format = Format::kJpeg) {
  ResizeSettings settings;
  settings.sizes = std::move(sizes);
  settings.formats = {format};
  return settings;
}

}  // namespace thumbmill::test_images
