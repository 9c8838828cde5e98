// jpeg_decode.h says why and what. libvips 8.14.1's own code this mirrors:
// libvips/foreign/jpeg2vips.c (source manager, message policy, the crop to
// floor(size / shrink)) and libvips/resample/thumbnail.c (the shrink).
#include "worker/jpeg_decode.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "worker/libjpeg_errors.h"

#include <jerror.h>

namespace thumbmill {

int thumbnail_jpeg_shrink(Dims stored, bool swap, const ThumbnailBox& box) {
  const int target_width = swap ? box.height : box.width;
  const int target_height = swap ? box.width : box.height;
  double hshrink = static_cast<double>(stored.width) / target_width;
  double vshrink = static_cast<double>(stored.height) / target_height;
  // Fit inside the box: the larger shrink wins; cropping fills it: the smaller.
  const bool horizontal = box.crop ? hshrink < vshrink : hshrink >= vshrink;
  if (box.mode != ThumbnailBox::Mode::kForce) {
    if (horizontal) vshrink = hshrink;
    else hshrink = vshrink;
  }
  if (box.mode == ThumbnailBox::Mode::kDown) {
    hshrink = std::max(1.0, hshrink);
    vshrink = std::max(1.0, vshrink);
  }
  hshrink = std::min(hshrink, static_cast<double>(stored.width));
  vshrink = std::min(vshrink, static_cast<double>(stored.height));
  // Leave at least a factor of two for libvips' own resize.
  const double shrink = std::min(hshrink, vshrink);
  return shrink >= 16 ? 8 : shrink >= 8 ? 4 : shrink >= 4 ? 2 : 1;
}

namespace {

std::atomic<std::uint64_t> decodes{0};

// The whole body is the buffer: when libjpeg wants more, the file ended
// early, which libvips' loader (fail_on error) also calls an error.
void init_source(j_decompress_ptr) {}
void term_source(j_decompress_ptr) {}
boolean ended_early(j_decompress_ptr cinfo) {
  ERREXIT(cinfo, JERR_INPUT_EOF);
  return TRUE;
}
void skip_input_data(j_decompress_ptr cinfo, long count) {
  if (count <= 0) return;
  jpeg_source_mgr* source = cinfo->src;
  if (static_cast<unsigned long>(count) > source->bytes_in_buffer) ended_early(cinfo);
  source->next_input_byte += count;
  source->bytes_in_buffer -= static_cast<std::size_t>(count);
}

/// Decodes `out`'s rows (a prepared memory image, 8-bit, out->Bands bytes a
/// pixel) from `jpeg` at 1/`shrink`; `spare` holds one full libjpeg row.
/// False with errors->message set when libjpeg gave up.
bool decode_rows(jpeg_decompress_struct* cinfo, LibjpegErrors* errors, jpeg_source_mgr* source,
                 std::span<const std::byte> jpeg, int shrink, VipsImage* out, JSAMPLE* spare,
                 std::size_t spare_size) {
  if (setjmp(errors->jump) != 0) return false;
  source->init_source = init_source;
  source->fill_input_buffer = ended_early;
  source->skip_input_data = skip_input_data;
  source->resync_to_restart = jpeg_resync_to_restart;
  source->term_source = term_source;
  source->next_input_byte = reinterpret_cast<const JOCTET*>(jpeg.data());
  source->bytes_in_buffer = jpeg.size();
  cinfo->src = source;
  jpeg_read_header(cinfo, TRUE);
  cinfo->scale_num = 1;
  cinfo->scale_denom = static_cast<unsigned int>(shrink);
  jpeg_start_decompress(cinfo);
  const std::size_t row_bytes = static_cast<std::size_t>(out->Xsize) * static_cast<std::size_t>(out->Bands);
  const std::size_t decoded_bytes =
      static_cast<std::size_t>(cinfo->output_width) * static_cast<std::size_t>(cinfo->output_components);
  if (cinfo->output_components != out->Bands || cinfo->output_width < static_cast<JDIMENSION>(out->Xsize) ||
      cinfo->output_height < static_cast<JDIMENSION>(out->Ysize) || decoded_bytes > spare_size) {
    std::snprintf(errors->message, sizeof errors->message,
                  "libjpeg decodes %ux%u, %d bands where the header said %dx%d, %d bands", cinfo->output_width,
                  cinfo->output_height, cinfo->output_components, out->Xsize, out->Ysize, out->Bands);
    return false;
  }
  // libjpeg rounds the scaled size up; libvips crops to floor(size / shrink).
  for (int y = 0; y < out->Ysize; ++y) {
    JSAMPROW row = decoded_bytes == row_bytes ? VIPS_IMAGE_ADDR(out, 0, y) : spare;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) ended_early(reinterpret_cast<j_decompress_ptr>(cinfo));
    if (row == spare) std::memcpy(VIPS_IMAGE_ADDR(out, 0, y), spare, row_bytes);
  }
  return true;
}

}  // namespace

Result<vips::VImage> decode_jpeg_scaled(std::span<const std::byte> jpeg, int shrink, const vips::VImage& header) {
  // A memory image with the header's size, resolution and metadata.
  VipsImage* out = vips_image_new_memory();
  vips::VImage image(out);  // owns `out` from here
  if (vips_image_pipelinev(out, VIPS_DEMAND_STYLE_THINSTRIP, header.get_image(), nullptr) != 0 ||
      vips_image_write_prepare(out) != 0) {
    vips_error_clear();
    return Status(Code::kTooMuchMemory, "out of memory: cannot hold the decoded image");
  }
  jpeg_decompress_struct cinfo;
  LibjpegErrors errors;
  errors.Attach(reinterpret_cast<j_common_ptr>(&cinfo));
  jpeg_create_decompress(&cinfo);
  jpeg_source_mgr source{};
  // One full libjpeg row: it may be wider than the image by shrink - 1.
  std::vector<JSAMPLE> spare(static_cast<std::size_t>(header.width() + 8) * static_cast<std::size_t>(header.bands()) + 64);
  const bool decoded = decode_rows(&cinfo, &errors, &source, jpeg, shrink, out, spare.data(), spare.size());
  // As in libvips: no jpeg_finish_decompress, whose only work is reading the tail.
  jpeg_destroy_decompress(&cinfo);
  if (!decoded) return Status(Code::kCorruptImage, std::string("corrupt image: ") + errors.Reason());
  decodes.fetch_add(1, std::memory_order_relaxed);
  return image;
}

std::uint64_t jpeg_direct_decodes() { return decodes.load(std::memory_order_relaxed); }

}  // namespace thumbmill
