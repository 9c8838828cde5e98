#include "shared/output_plan.h"

#include "shared/output_files.h"
#include "shared/output_names.h"

namespace thumbmill {

OutputPlan::OutputPlan(std::filesystem::path out_dir, std::vector<SizeSpec> sizes, Format format)
    : out_dir_(std::move(out_dir)), sizes_(std::move(sizes)), format_(format) {}

OutputPlan::OutputPlan(const Options& options) : OutputPlan(options.out_dir, options.sizes, options.format) {
  if (!options.out_is_s3()) return;
  // finalize_options has checked it.
  if (auto out = parse_s3_url(options.out_s3); out.ok()) {
    bucket_ = out->bucket;
    prefix_ = out->key;
  }
}

std::string OutputPlan::location(std::string_view stem, std::size_t i) const {
  return to_s3() ? object(stem, i).url() : final_path(stem, i).string();
}

S3Location OutputPlan::object(std::string_view stem, std::size_t i) const { return object_named(file_name(stem, i)); }

S3Location OutputPlan::object_named(std::string_view name) const { return {bucket_, prefix_ + std::string(name)}; }

std::string_view OutputPlan::content_type() const {
  switch (format_) {
    case Format::kJpeg: return "image/jpeg";
    case Format::kWebp: return "image/webp";
    case Format::kPng: return "image/png";
    case Format::kAvif: return "image/avif";
  }
  return "application/octet-stream";
}

std::string OutputPlan::file_name(std::string_view stem, std::size_t i) const {
  return thumbnail_file_name(stem, sizes_.at(i), format_);
}

std::filesystem::path OutputPlan::final_path(std::string_view stem, std::size_t i) const {
  return out_dir_ / file_name(stem, i);
}

void OutputPlan::RemoveTemps(std::string_view stem, long writer) const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < count(); ++i) names.push_back(file_name(stem, i));
  remove_writer_temp_files(out_dir_, names, writer);
}

}  // namespace thumbmill
