#include "coordinator/s3_output_index.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "shared/output_names.h"

namespace thumbmill {
namespace {

/// Largest manifest record read (a record names a few outputs and a URL).
constexpr std::uint64_t kMaxRecordBytes = 64 * 1024;

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

Result<S3OutputIndex> S3OutputIndex::Load(S3Client& client, const OutputPlan& plan) {
  S3OutputIndex index(plan);
  const std::string records_prefix = plan.prefix() + ".thumbmill/manifest/";
  std::vector<S3Location> record_objects;
  std::string token;
  do {
    auto page = client.ListPage(plan.bucket(), plan.prefix(), token);
    if (!page.ok()) return page.status();
    for (const S3Object& o : page->objects) {
      index.sizes_[stable_hash(o.key)] = o.size;
      if (o.key.starts_with(records_prefix) && o.key.ends_with(".json") && o.size <= kMaxRecordBytes)
        record_objects.push_back({plan.bucket(), o.key});
    }
    token = page->truncated ? page->next_token : "";
  } while (!token.empty());
  const auto bodies = client.GetMany(record_objects, kMaxRecordBytes, 32);
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    if (!bodies[i].ok()) continue;
    auto record = manifest_record_from_json(*bodies[i]);
    // A record lives under its source's hash: one elsewhere is not trusted.
    if (!record.ok() || plan.object_named(manifest_record_name(record->source)).key != record_objects[i].key) continue;
    index.stems_[lowercase(record->stem)] = record->source;
    index.records_[record->source] = std::move(*record);
  }
  return index;
}

std::optional<ManifestRecord> S3OutputIndex::Record(std::string_view source) const {
  auto it = records_.find(std::string(source));
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

bool S3OutputIndex::OutputsIntact(const ManifestRecord& record) const {
  for (const ManifestOutput& o : record.outputs) {
    auto it = sizes_.find(stable_hash(plan_.object_named(o.name).key));
    if (it == sizes_.end() || it->second != o.bytes) return false;
  }
  return true;
}

std::optional<std::string> S3OutputIndex::StemOwner(std::string_view stem) const {
  auto it = stems_.find(lowercase(stem));
  if (it == stems_.end()) return std::nullopt;
  return it->second;
}

}  // namespace thumbmill
