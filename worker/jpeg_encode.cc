// jpeg_encode.h says why and which libvips code this mirrors.
#include "worker/jpeg_encode.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "worker/libjpeg_errors.h"
#include "worker/pixel_strips.h"
#include "worker/vips_errors.h"

namespace thumbmill {
namespace {

/// Compresses `image`'s rows into *out / *out_size (jpeg_mem_dest: malloc'd,
/// the caller frees), computing them through `region` a strip at a time
/// (pixel_strips.h). False with errors->message set when libjpeg or libvips
/// gave up.
bool compress_rows(jpeg_compress_struct* cinfo, LibjpegErrors* errors, VipsImage* image, VipsRegion* region,
                   const JpegEncoding& encoding, unsigned char** out, unsigned long* out_size) {
  if (setjmp(errors->jump) != 0) return false;
  jpeg_mem_dest(cinfo, out, out_size);
  cinfo->image_width = static_cast<JDIMENSION>(image->Xsize);
  cinfo->image_height = static_cast<JDIMENSION>(image->Ysize);
  cinfo->input_components = image->Bands;
  cinfo->in_color_space = image->Bands == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(cinfo);
  cinfo->optimize_coding = encoding.optimize_coding ? TRUE : FALSE;
  jpeg_set_quality(cinfo, encoding.quality, TRUE);
  if (encoding.progressive) jpeg_simple_progression(cinfo);
  if (encoding.quality >= 90) {  // libvips' subsample_mode auto
    for (int i = 0; i < image->Bands; ++i) {
      cinfo->comp_info[i].h_samp_factor = 1;
      cinfo->comp_info[i].v_samp_factor = 1;
    }
  }
  cinfo->write_JFIF_header = FALSE;  // strip
  jpeg_start_compress(cinfo, TRUE);
  const bool computed = for_each_strip(image, [&](VipsRect& strip) {
    if (vips_region_prepare(region, &strip) != 0) return false;
    for (int y = strip.top; y < strip.top + strip.height; ++y) {
      JSAMPROW row = VIPS_REGION_ADDR(region, 0, y);
      jpeg_write_scanlines(cinfo, &row, 1);
    }
    return true;
  });
  if (!computed) {
    std::snprintf(errors->message, sizeof errors->message, "%s", vips_error_buffer());
    vips_error_clear();
    return false;
  }
  jpeg_finish_compress(cinfo);
  return true;
}

}  // namespace

bool encodes_directly(const vips::VImage& image) {
  return image.format() == VIPS_FORMAT_UCHAR && image.coding() == VIPS_CODING_NONE &&
         (image.bands() == 3 || image.bands() == 1);
}

Result<std::vector<std::byte>> encode_jpeg(const vips::VImage& image, const JpegEncoding& encoding) {
  VipsImage* pixels = image.get_image();
  VipsRegion* region = vips_region_new(pixels);
  if (region == nullptr) return Status(Code::kEncodeFailed, take_vips_error("cannot read the pixels").text);
  jpeg_compress_struct cinfo;
  LibjpegErrors errors;
  errors.Attach(reinterpret_cast<j_common_ptr>(&cinfo));
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long out_size = 0;
  const bool compressed = compress_rows(&cinfo, &errors, pixels, region, encoding, &out, &out_size);
  jpeg_destroy_compress(&cinfo);
  g_object_unref(region);
  Result<std::vector<std::byte>> result =
      compressed ? Result<std::vector<std::byte>>(std::vector<std::byte>(reinterpret_cast<std::byte*>(out),
                                                                         reinterpret_cast<std::byte*>(out) + out_size))
                 : Result<std::vector<std::byte>>(
                       Status(Code::kEncodeFailed, errors.Reason()));
  std::free(out);
  return result;
}

}  // namespace thumbmill
