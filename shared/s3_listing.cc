// The XML S3 answers, read with libxml2: ListObjectsV2 pages and <Error>
// bodies. Entities are decoded by the parser (radosgw's continuation token
// is the last key, so "&amp;" in it must come back as "&"); no external
// entity or DTD is ever loaded.
#include "shared/s3_listing.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <charconv>
#include <memory>
#include <mutex>
#include <optional>

namespace thumbmill {
namespace {

struct DocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
using XmlDoc = std::unique_ptr<xmlDoc, DocFree>;

XmlDoc parse_xml(std::string_view text) {
  // libxml2 wants one xmlInitParser before threads use it.
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
  if (text.size() > static_cast<std::size_t>(INT32_MAX)) return nullptr;
  return XmlDoc(xmlReadMemory(text.data(), static_cast<int>(text.size()), "s3.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
}

bool named(const xmlNode* node, const char* name) {
  return node->type == XML_ELEMENT_NODE && xmlStrcmp(node->name, reinterpret_cast<const xmlChar*>(name)) == 0;
}

std::string text_of(const xmlNode* node) {
  xmlChar* content = xmlNodeGetContent(node);
  std::string text = content ? reinterpret_cast<const char*>(content) : "";
  xmlFree(content);
  return text;
}

/// The text of `parent`'s first child element `name`; nullopt without one.
std::optional<std::string> child_text(const xmlNode* parent, const char* name) {
  for (const xmlNode* c = parent->children; c != nullptr; c = c->next)
    if (named(c, name)) return text_of(c);
  return std::nullopt;
}

/// At most `limit` printable characters of `text`, for a message: a server's
/// words never carry a line break or a terminal escape into a log.
std::string clip(std::string_view text, std::size_t limit = 200) {
  std::string out;
  for (char c : text) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  return out;
}

Status not_a_listing(const std::string& why) {
  return Status(Code::kInvalidArgument, "not a ListObjectsV2 answer: " + why);
}

}  // namespace

Result<S3ListPage> parse_list_objects_v2(std::string_view xml) {
  const XmlDoc doc = parse_xml(xml);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  if (root == nullptr) return not_a_listing("the body is not complete XML");
  if (named(root, "Error")) return not_a_listing("an error: " + s3_error_summary(200, xml));
  if (!named(root, "ListBucketResult")) return not_a_listing("the root element is not ListBucketResult");

  S3ListPage page;
  for (const xmlNode* c = root->children; c != nullptr; c = c->next) {
    if (!named(c, "Contents")) continue;
    S3Object object;
    const auto key = child_text(c, "Key");
    if (!key) return not_a_listing("an entry without a Key");
    object.key = *key;
    const std::string size = child_text(c, "Size").value_or("0");
    const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), object.size);
    if (ec != std::errc() || end != size.data() + size.size())
      return not_a_listing("the Size '" + clip(size, 40) + "' of an entry is not a number");
    object.etag = child_text(c, "ETag").value_or("");
    object.last_modified = child_text(c, "LastModified").value_or("");
    page.objects.push_back(std::move(object));
  }
  page.truncated = child_text(root, "IsTruncated").value_or("false") == "true";
  if (page.truncated) {
    page.next_token = child_text(root, "NextContinuationToken").value_or("");
    if (page.next_token.empty())
      return not_a_listing("it says it is truncated but gives no NextContinuationToken");
  }
  return page;
}

std::string s3_error_summary(long http_status, std::string_view body) {
  std::string summary = "HTTP " + std::to_string(http_status);
  if (body.empty() || body.find("<Error") == std::string_view::npos) return summary;
  const XmlDoc doc = parse_xml(body);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  if (root == nullptr || !named(root, "Error")) return summary;
  // Appended piece by piece: "a" + b trips GCC 12's -Wrestrict false positive.
  if (const auto code = child_text(root, "Code"); code && !code->empty()) {
    summary += ' ';
    summary += clip(*code, 60);
  }
  if (const auto message = child_text(root, "Message"); message && !message->empty()) {
    summary += ": ";
    summary += clip(*message);
  }
  return summary;
}

}  // namespace thumbmill
