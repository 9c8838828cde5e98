#include "shared/image_extensions.h"

#include <algorithm>
#include <cctype>

namespace thumbmill {

std::vector<std::string> default_image_extensions() {
  return {"jpg", "jpeg", "jpe", "png", "webp", "gif", "tif", "tiff", "avif", "heic", "heif", "jxl"};
}

bool has_extension(std::string_view name, const std::vector<std::string>& extensions) {
  const auto dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || name[dot - 1] == '/') return false;
  const std::string_view ext = name.substr(dot + 1);
  return std::any_of(extensions.begin(), extensions.end(), [ext](const std::string& want) {
    return want.size() == ext.size() && std::equal(want.begin(), want.end(), ext.begin(), [](char a, char b) {
             return a == std::tolower(static_cast<unsigned char>(b));
           });
  });
}

bool names_an_image(std::string_view name, const std::vector<std::string>& extensions) {
  static const std::vector<std::string> kDefault = default_image_extensions();
  return has_extension(name, kDefault) || has_extension(name, extensions);
}

Result<std::vector<std::string>> parse_extensions(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    std::string item(text.substr(start, comma - start));
    if (!item.empty() && item.front() == '.') item.erase(0, 1);
    for (char& c : item) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool bad = item.empty() || std::any_of(item.begin(), item.end(), [](char c) {
      return c == '.' || c == '/' || std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x20;
    });
    if (bad)
      return Status(Code::kInvalidArgument, "'" + std::string(text.substr(start, comma - start)) +
                                                "' is not an extension (give them like jpg,png,webp)");
    if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(std::move(item));
    if (comma == text.size()) return out;
    start = comma + 1;
  }
}

}  // namespace thumbmill
