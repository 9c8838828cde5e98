// Value parsers and names for the image options (shared/image_options.h).
// Each message is the one the user sees after "--flag: ".
#include "shared/image_options.h"

#include <algorithm>
#include <cctype>

#include "shared/option_limits.h"

namespace thumbmill {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

template <class T>
struct Named {
  std::string_view name;
  T value;
};

constexpr Named<Fit> kFits[] = {
    {"inside", Fit::kInside}, {"cover", Fit::kCover}, {"fill", Fit::kFill}, {"outside", Fit::kOutside}};
// "center" is sharp's spelling, "centre" libvips's.
constexpr Named<Crop> kCrops[] = {
    {"centre", Crop::kCentre}, {"attention", Crop::kAttention}, {"entropy", Crop::kEntropy}, {"center", Crop::kCentre}};
constexpr Named<Profile> kProfiles[] = {{"srgb", Profile::kSrgb}, {"keep", Profile::kKeep}, {"p3", Profile::kP3}};

template <class T, std::size_t N>
Result<T> parse_named(std::string_view text, const Named<T> (&table)[N], std::string_view choices) {
  const std::string name = lower(text);
  for (const auto& entry : table)
    if (entry.name == name) return entry.value;
  return invalid_option(quoted(text) + " is not one of " + std::string(choices));
}

template <class T, std::size_t N>
std::string_view name_of(T value, const Named<T> (&table)[N]) {
  for (const auto& entry : table)
    if (entry.value == value) return entry.name;
  return "unknown";
}

}  // namespace

Result<Fit> parse_fit(std::string_view text) { return parse_named(text, kFits, "inside, cover, fill, outside"); }
Result<Crop> parse_crop(std::string_view text) { return parse_named(text, kCrops, "centre, attention, entropy"); }
Result<Profile> parse_profile(std::string_view text) { return parse_named(text, kProfiles, "srgb, keep, p3"); }

Result<MetadataKeep> parse_keep(std::string_view text) {
  MetadataKeep keep;
  std::string_view rest = text;
  while (true) {
    const auto comma = rest.find(',');
    const std::string word = lower(rest.substr(0, comma));
    if (word == "exif") keep.exif = true;
    else if (word == "icc") keep.icc = true;
    else if (word == "xmp") keep.xmp = true;
    else if (word == "all") keep = {true, true, true};
    else if (word != "none") return invalid_option(thumbmill::quoted(std::string_view(word)) + " is not one of exif, icc, xmp, all, none");
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return keep;
}

std::string_view fit_name(Fit fit) { return name_of(fit, kFits); }
std::string_view crop_name(Crop crop) { return name_of(crop, kCrops); }
std::string_view profile_name(Profile profile) { return name_of(profile, kProfiles); }

std::string keep_name(const MetadataKeep& keep) {
  if (keep.exif && keep.icc && keep.xmp) return "all";
  std::string out;
  for (auto [kept, name] : {std::pair{keep.exif, "exif"}, {keep.icc, "icc"}, {keep.xmp, "xmp"}})
    if (kept) out += (out.empty() ? "" : ",") + std::string(name);
  return out.empty() ? "none" : out;
}

}  // namespace thumbmill
