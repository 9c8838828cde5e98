// vips_errors.h says what these are for.
#include "worker/vips_errors.h"

namespace thumbmill {

VipsErrorLine take_vips_error(std::string_view fallback) {
  std::string_view text = vips_error_buffer();
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  if (text.empty()) text = fallback;
  VipsErrorLine line;
  const auto colon = text.find(": ");
  if (colon != std::string_view::npos && text.substr(0, colon).find(' ') == std::string_view::npos) {
    line.domain = text.substr(0, colon);
    text.remove_prefix(colon + 2);
  }
  line.text = text;
  vips_error_clear();
  return line;
}

std::string format_of_loader(std::string_view nickname) {
  return std::string(nickname.substr(0, nickname.find("load")));
}

Status untrusted_format(std::string_view format) {
  return Status(Code::kUntrustedFormat, "untrusted format " + std::string(format) +
                                            " blocked (pass --allow-untrusted-formats)");
}

Status vips_failure(Code code, std::string_view context, std::string_view fallback) {
  const VipsErrorLine line = take_vips_error(fallback);
  if (line.text == "operation is blocked") return untrusted_format(format_of_loader(line.domain));
  if (says_out_of_memory(line.text)) return out_of_memory(line.text);
  return Status(code, std::string(context) + ": " + line.text);
}

}  // namespace thumbmill
