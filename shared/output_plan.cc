#include "shared/output_plan.h"

#include "shared/output_files.h"
#include "shared/output_names.h"

namespace thumbmill {

OutputPlan::OutputPlan(std::filesystem::path out_dir, std::vector<SizeSpec> sizes, Format format)
    : out_dir_(std::move(out_dir)), sizes_(std::move(sizes)), format_(format) {}

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
