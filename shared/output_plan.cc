#include "shared/output_plan.h"

#include <map>

#include "shared/output_files.h"
#include "shared/output_names.h"

namespace thumbmill {
namespace {

/// The template in force; finalize_options has checked it, so the default
/// is only a guard for a plan built by hand from a bad one.
NameTemplate effective_template(std::string_view text, std::size_t sizes, std::size_t formats) {
  auto parsed = NameTemplate::Parse(text);
  if (parsed.ok()) parsed = parsed->ForOutputs(sizes, formats);
  return parsed.ok() ? *parsed : *NameTemplate::Parse(NameTemplate::kDefault);
}

}  // namespace

OutputPlan::OutputPlan(std::filesystem::path out_dir, std::vector<SizeSpec> sizes, std::vector<Format> formats,
                       std::string_view name_template)
    : out_dir_(std::move(out_dir)),
      sizes_(std::move(sizes)),
      formats_(formats.empty() ? std::vector<Format>{Format::kJpeg} : std::move(formats)),
      name_(effective_template(name_template, sizes_.size(), formats_.size())),
      hash_added_(name_.text() != name_template) {}

OutputPlan::OutputPlan(const Options& options)
    : OutputPlan(options.out_dir, options.sizes, options.formats, options.name_template) {
  if (!options.out_is_s3()) return;
  // finalize_options has checked it.
  if (auto out = parse_s3_url(options.out_s3); out.ok()) {
    bucket_ = out->bucket;
    prefix_ = out->key;
  }
}

bool OutputPlan::names_need_dimensions() const {
  return name_.uses(Placeholder::kWidth) || name_.uses(Placeholder::kHeight);
}

bool OutputPlan::has_directories() const {
  return name_.text().find('/') != std::string::npos || name_.uses(Placeholder::kDir);
}

std::string OutputPlan::stem_base(std::string_view source) const {
  return name_.keyed_by_stem() ? std::string() : source_hash8(source);
}

std::string OutputPlan::location(SourceNames who, std::size_t i, int width, int height) const {
  return to_s3() ? object(who, i, width, height).url() : final_path(who, i, width, height).string();
}

S3Location OutputPlan::object(SourceNames who, std::size_t i, int width, int height) const {
  return object_named(file_name(who, i, width, height));
}

S3Location OutputPlan::object_named(std::string_view name) const { return {bucket_, prefix_ + std::string(name)}; }

std::string_view OutputPlan::content_type(std::size_t i) const {
  switch (format(i)) {
    case Format::kJpeg: return "image/jpeg";
    case Format::kWebp: return "image/webp";
    case Format::kPng: return "image/png";
    case Format::kAvif: return "image/avif";
  }
  return "application/octet-stream";
}

std::string OutputPlan::file_name(SourceNames who, std::size_t i, int width, int height) const {
  return name_.Expand({who.stem, who.source, size(i), format(i), width, height});
}

std::filesystem::path OutputPlan::final_path(SourceNames who, std::size_t i, int width, int height) const {
  return out_dir_ / file_name(who, i, width, height);
}

void OutputPlan::RemoveTemps(SourceNames who, long writer) const {
  // Directory -> the final names expected in it ({} with {width}/{height}:
  // any name); dimensions never appear in a directory (name_template.h).
  std::map<std::filesystem::path, std::vector<std::string>> by_dir;
  for (std::size_t i = 0; i < count(); ++i) {
    const std::filesystem::path relative = file_name(who, i);
    auto& names = by_dir[out_dir_ / relative.parent_path()];
    if (!names_need_dimensions()) names.push_back(relative.filename().string());
  }
  for (const auto& [dir, names] : by_dir) remove_writer_temp_files(dir, names, writer);
}

}  // namespace thumbmill
