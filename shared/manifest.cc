#include "shared/manifest.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "shared/output_files.h"
#include "shared/output_names.h"

namespace thumbmill {
namespace {

/// Records are a few hundred bytes; anything much larger is not one.
constexpr std::uintmax_t kMaxRecordBytes = 1 << 20;

std::string hex16(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

/// A validator goes into a request header: printable ASCII only (a record
/// is data read from disk, and a CR or LF would be a header of its own).
bool is_header_safe(std::string_view value) {
  for (char c : value)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

std::string options_fingerprint(const Options& options) {
  // "v1": bump when the resizer's output for the same options changes.
  // v2 (issue 9): width-only sizes bound the height at 4x the width, and
  // WebP files lost the EXIF block libvips 8.14.1 wrote despite strip.
  std::string text = "v2;sizes=";
  for (std::size_t i = 0; i < options.sizes.size(); ++i) text += (i ? "," : "") + options.sizes[i].label();
  // Several formats joined with ',': one format reads as before.
  text += ";format=";
  for (std::size_t i = 0; i < options.formats.size(); ++i) {
    if (i) text += ',';
    text += format_name(options.formats[i]);
  }
  text += ";quality=" + std::to_string(options.quality);
  // The image options (shared/image_options.h) only when not the default, so
  // a manifest written with every default stays valid.
  const Options defaults;
  auto add = [&text](bool differs, std::string_view name, const std::string& value) {
    if (differs) text.append(";").append(name).append("=").append(value);
  };
  add(options.fit != defaults.fit, "fit", std::string(fit_name(options.fit)));
  add(options.crop != defaults.crop, "crop", std::string(crop_name(options.crop)));
  add(options.upscale, "upscale", "1");
  add(options.keep != defaults.keep, "keep", keep_name(options.keep));
  add(options.no_rotate, "no-rotate", "1");
  add(options.profile != defaults.profile, "profile", std::string(profile_name(options.profile)));
  add(options.progressive, "progressive", "1");
  add(options.optimize_coding, "optimize-coding", "1");
  add(options.effort != defaults.effort, "effort", std::to_string(options.effort));
  add(options.lossless, "lossless", "1");
  return text;
}

Result<SourceValidator> local_file_validator(const std::filesystem::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(path.string());
  SourceValidator v;
  v.has_file_stat = true;
  v.file_size = static_cast<std::uint64_t>(st.st_size);
  v.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return v;
}

std::string manifest_record_to_json(const ManifestRecord& r) {
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& o : r.outputs)
    outputs.push_back({{"name", o.name}, {"width", o.width}, {"height", o.height}, {"bytes", o.bytes}});
  nlohmann::json validator = nlohmann::json::object();
  if (!r.validator.etag.empty()) validator["etag"] = r.validator.etag;
  if (!r.validator.last_modified.empty()) validator["last_modified"] = r.validator.last_modified;
  if (r.validator.has_file_stat) {
    validator["size"] = r.validator.file_size;
    validator["mtime_ns"] = r.validator.mtime_ns;
  }
  const nlohmann::json j = {{"source", r.source}, {"stem", r.stem},         {"options", r.options},
                            {"outputs", outputs}, {"validator", validator}};
  // A source may hold bytes that are not UTF-8: stored escaped, never lost.
  return j.dump(1, ' ', true, nlohmann::json::error_handler_t::strict) + "\n";
}

Result<ManifestRecord> manifest_record_from_json(std::string_view text) {
  try {
    const auto j = nlohmann::json::parse(text);
    ManifestRecord r;
    r.source = j.at("source").get<std::string>();
    r.stem = j.at("stem").get<std::string>();
    r.options = j.at("options").get<std::string>();
    for (const auto& o : j.at("outputs"))
      r.outputs.push_back({o.at("name").get<std::string>(), o.at("width").get<int>(), o.at("height").get<int>(),
                           o.at("bytes").get<std::uint64_t>()});
    const auto& v = j.at("validator");
    r.validator.etag = v.value("etag", "");
    r.validator.last_modified = v.value("last_modified", "");
    if (!is_header_safe(r.validator.etag) || !is_header_safe(r.validator.last_modified))
      return Status(Code::kInvalidArgument, "malformed manifest record: a validator is not printable ASCII");
    if (v.contains("size")) {
      r.validator.has_file_stat = true;
      r.validator.file_size = v.at("size").get<std::uint64_t>();
      r.validator.mtime_ns = v.at("mtime_ns").get<std::int64_t>();
    }
    return r;
  } catch (const std::exception& e) {
    return Status(Code::kInvalidArgument, std::string("malformed manifest record: ") + e.what());
  }
}

Manifest::Manifest(std::filesystem::path out_dir, bool durable)
    : out_dir_(std::move(out_dir)), dir_(out_dir_ / ".thumbmill" / "manifest"), durable_(durable) {}

std::string manifest_record_name(std::string_view source) {
  const std::string h = hex16(stable_hash(source));
  return ".thumbmill/manifest/" + h.substr(0, 2) + "/" + h + ".json";
}

std::filesystem::path Manifest::RecordPath(std::string_view source) const {
  return out_dir_ / manifest_record_name(source);
}

std::optional<ManifestRecord> Manifest::Load(std::string_view source) const {
  const auto path = RecordPath(source);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxRecordBytes) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return std::nullopt;
  auto record = manifest_record_from_json(text.str());
  if (!record.ok() || record->source != source) return std::nullopt;
  return std::move(*record);
}

Status Manifest::Store(const ManifestRecord& record) const {
  const auto path = RecordPath(record.source);
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return Status(Code::kIoError, "cannot create " + path.parent_path().string() + ": " + ec.message());
  std::string text;
  try {
    text = manifest_record_to_json(record);
  } catch (const std::exception&) {
    // Bytes that are not UTF-8 in the source or a validator: such a record
    // cannot be stored as JSON; the source is redone next time.
    return Status(Code::kInvalidArgument, "source is not valid UTF-8; no manifest record");
  }
  return write_file_atomically(path, std::as_bytes(std::span(text.data(), text.size())), durable_);
}

Status Manifest::Remove(std::string_view source) const {
  const auto path = RecordPath(source);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("cannot remove " + path.string());
  return Status::Ok();
}

int remove_orphan_manifest_temps(const std::filesystem::path& out_dir, std::chrono::seconds grace) {
  const auto state = out_dir / ".thumbmill";
  int removed = remove_orphan_temp_files(state / "stems", false, grace);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(state / "manifest", ec))
    if (e.is_directory(ec) && !e.is_symlink(ec)) removed += remove_orphan_temp_files(e.path(), false, grace);
  return removed;
}

bool Manifest::OutputsIntact(const ManifestRecord& record) const {
  if (record.outputs.empty()) return false;
  for (const auto& o : record.outputs) {
    // A name is ours only if it is a relative path of plain names, each
    // directory on it a real one (a record is data read from disk: never
    // let it point elsewhere). --name may put outputs in subdirectories.
    std::error_code ec;
    std::filesystem::path walked = out_dir_;
    for (std::size_t at = 0;;) {
      const std::size_t slash = o.name.find('/', at);
      const std::string part = o.name.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
      if (part.empty() || part[0] == '.') return false;
      walked /= part;
      if (slash == std::string::npos) break;
      if (!std::filesystem::is_directory(std::filesystem::symlink_status(walked, ec)) || ec) return false;
      at = slash + 1;
    }
    const auto status = std::filesystem::symlink_status(out_dir_ / o.name, ec);
    if (ec || !std::filesystem::is_regular_file(status)) return false;
    if (std::filesystem::file_size(out_dir_ / o.name, ec) != o.bytes || ec) return false;
  }
  return true;
}

}  // namespace thumbmill
