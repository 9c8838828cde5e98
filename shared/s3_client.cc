// Blocking S3 requests on one reused easy handle, and many small GETs on a
// multi handle.
#include "shared/s3_client.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>

namespace thumbmill {
namespace {

// The most of an answer kept when no limit is asked (a listing page of 1000
// long keys is well under 1 MiB; error bodies are a few hundred bytes).
constexpr std::uint64_t kMaxListingBytes = 64ull << 20;
constexpr std::size_t kMaxErrorBytes = 64 << 10;

/// One request's buffers, alive for its transfer.
struct Transfer {
  CURL* easy = nullptr;
  CurlHeaders headers;
  std::string body;
  std::uint64_t max_bytes = 0;
  bool too_large = false;
  std::string_view upload;
  std::size_t upload_pos = 0;
  char error[CURL_ERROR_SIZE] = {};

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  // A reused handle keeps no pointer into a Transfer that is gone.
  ~Transfer() {
    if (easy == nullptr) return;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, nullptr);
    curl_easy_setopt(easy, CURLOPT_READDATA, nullptr);
  }
};

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) {
    // An error body: only its start is read (s3_error_summary), whatever
    // the limit asked for the object.
    if (t->body.size() < kMaxErrorBytes) t->body.append(data, std::min(n, kMaxErrorBytes - t->body.size()));
    return n;
  }
  if (t->body.size() + n > t->max_bytes) {
    t->too_large = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  t->body.append(data, n);
  return n;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = std::min(size * count, t->upload.size() - t->upload_pos);
  std::memcpy(buffer, t->upload.data() + t->upload_pos, n);
  t->upload_pos += n;
  return n;
}

/// Sets what every request of the client has, before a prepare_* sets the
/// request itself, and empties the buffers.
void begin(Transfer& t, int timeout_s, std::uint64_t max_bytes, std::string_view upload = {}) {
  t.body.clear();
  t.max_bytes = max_bytes;
  t.too_large = false;
  t.upload = upload;
  t.upload_pos = 0;
  t.error[0] = '\0';
  CURL* easy = t.easy;
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(easy, CURLOPT_READDATA, &t);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, static_cast<long>(timeout_s));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT, static_cast<long>(timeout_s));
}

std::string endpoint_of(const S3Settings& settings) {
  return settings.endpoint.empty() ? "https://s3." + settings.region + ".amazonaws.com" : settings.endpoint;
}

/// The outcome of a finished transfer: its HTTP status, or a failure that
/// names `what` (kNetwork, kTimeout, kTooLarge).
Result<long> finish(const Transfer& t, CURLcode code, const S3Settings& settings, const std::string& what) {
  if (t.too_large)
    return Status(Code::kTooLarge, what + ": the answer is over " + std::to_string(t.max_bytes) + " bytes");
  if (code != CURLE_OK) {
    const std::string why = t.error[0] != '\0' ? t.error : curl_easy_strerror(code);
    const Code c = code == CURLE_OPERATION_TIMEDOUT ? Code::kTimeout : Code::kNetwork;
    return Status(c, what + ": cannot reach the S3 endpoint " + endpoint_of(settings) + ": " + why);
  }
  long status = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

bool success(long status) { return status >= 200 && status < 300; }

/// Runs the request prepared on `t.easy`: the answer's body when it is a
/// 2xx, else why not, the message starting with `what`.
Result<std::string> perform(Transfer& t, const S3Settings& settings, const std::string& what) {
  auto status = finish(t, curl_easy_perform(t.easy), settings, what);
  if (!status.ok()) return status.status();
  if (!success(*status)) return Status(Code::kHttpStatus, what + ": " + s3_error_summary(*status, t.body));
  return std::move(t.body);
}

/// "HTTP 403 SignatureDoesNotMatch: ..." -> "SignatureDoesNotMatch".
std::string error_code_of(const std::string& summary) {
  const auto first = summary.find(' ', 5);  // after "HTTP "
  if (first == std::string::npos) return "";
  const auto end = summary.find(':', first + 1);
  return summary.substr(first + 1, end == std::string::npos ? std::string::npos : end - first - 1);
}

/// What to change, for a 403 on the preflight.
std::string denied_hint(const S3Settings& settings, const std::string& code) {
  if (settings.anonymous())
    return "no credentials were given (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)";
  if (code == "SignatureDoesNotMatch")
    return "check AWS_SECRET_ACCESS_KEY (or the profile's aws_secret_access_key) for key " + settings.describe();
  if (code == "InvalidAccessKeyId") return "check AWS_ACCESS_KEY_ID (" + settings.describe() + ")";
  if (code == "ExpiredToken" || code == "InvalidToken") return "check AWS_SESSION_TOKEN";
  return "check that these credentials may use it (" + settings.describe() + ")";
}

}  // namespace

S3Client::S3Client(S3Settings settings, int timeout_s)
    : settings_(std::move(settings)), timeout_s_(timeout_s), easy_(curl_easy_init()) {}

S3Client::~S3Client() { curl_easy_cleanup(static_cast<CURL*>(easy_)); }

Status S3Client::CheckBucket(std::string_view bucket) {
  const std::string name(bucket);
  Transfer t;
  t.easy = static_cast<CURL*>(easy_);
  begin(t, timeout_s_, kMaxListingBytes);
  s3_prepare_head_bucket(t.easy, settings_, bucket, t.headers);
  auto head = finish(t, curl_easy_perform(t.easy), settings_, "bucket '" + name + "'");
  if (!head.ok()) return head.status();
  if (success(*head)) return Status::Ok();

  // A HEAD answer has no body: ask again with a GET, whose <Error> body
  // names the reason (SignatureDoesNotMatch, NoSuchBucket, ...).
  std::string summary = s3_error_summary(*head, "");
  begin(t, timeout_s_, kMaxListingBytes);
  s3_prepare_list(t.easy, settings_, bucket, "", "", t.headers, 1);
  if (auto get = finish(t, curl_easy_perform(t.easy), settings_, "bucket '" + name + "'");
      get.ok() && *get == *head)
    summary = s3_error_summary(*get, t.body);

  const std::string code = error_code_of(summary);
  if (*head == 404)
    return Status(Code::kHttpStatus, "bucket '" + name + "' does not exist at " + endpoint_of(settings_) + " (" +
                                         summary + ")");
  if (*head == 403 || *head == 401)
    return Status(Code::kHttpStatus, "access to bucket '" + name + "' denied (" + summary + "): " +
                                         denied_hint(settings_, code));
  if (*head == 301 || *head == 307)
    return Status(Code::kHttpStatus, "bucket '" + name + "' is not served here (" + summary +
                                         "): check the region (" + settings_.describe() + ")");
  return Status(Code::kHttpStatus, "bucket '" + name + "' at " + endpoint_of(settings_) + ": " + summary);
}

Result<S3ListPage> S3Client::ListPage(std::string_view bucket, std::string_view prefix,
                                      std::string_view continuation_token, int max_keys) {
  const std::string what = "listing " + S3Location{std::string(bucket), std::string(prefix)}.url();
  Transfer t;
  t.easy = static_cast<CURL*>(easy_);
  begin(t, timeout_s_, kMaxListingBytes);
  s3_prepare_list(t.easy, settings_, bucket, prefix, continuation_token, t.headers, max_keys);
  auto body = perform(t, settings_, what);
  if (!body.ok()) return body.status();
  auto page = parse_list_objects_v2(*body);
  if (!page.ok()) return Status(page.status().code(), what + ": " + page.status().message());
  return page;
}

Result<std::string> S3Client::Get(const S3Location& object, std::uint64_t max_bytes) {
  const std::string what = "GET " + object.url();
  Transfer t;
  t.easy = static_cast<CURL*>(easy_);
  begin(t, timeout_s_, max_bytes);
  s3_prepare_get(t.easy, settings_, object, t.headers);
  return perform(t, settings_, what);
}

std::vector<Result<std::string>> S3Client::GetMany(const std::vector<S3Location>& objects, std::uint64_t max_bytes,
                                                   int parallel) {
  std::vector<Result<std::string>> results(objects.size(), Status(Code::kInternal, "not fetched"));
  const std::size_t slots = std::min<std::size_t>(std::max(parallel, 1), objects.size());
  std::vector<std::unique_ptr<Transfer>> transfers;
  std::vector<std::size_t> index_of(slots);  // which object a slot fetches
  CURLM* multi = curl_multi_init();
  std::size_t next = 0;
  auto start = [&](std::size_t slot) {
    Transfer& t = *transfers[slot];
    index_of[slot] = next;
    begin(t, timeout_s_, max_bytes);
    s3_prepare_get(t.easy, settings_, objects[next], t.headers);
    curl_easy_setopt(t.easy, CURLOPT_PRIVATE, reinterpret_cast<void*>(slot));
    curl_multi_add_handle(multi, t.easy);
    ++next;
  };
  for (std::size_t slot = 0; slot < slots; ++slot) {
    transfers.push_back(std::make_unique<Transfer>());
    transfers.back()->easy = curl_easy_init();
    start(slot);
  }
  int running = 0;
  do {
    curl_multi_perform(multi, &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      void* slot_ptr = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &slot_ptr);
      const auto slot = reinterpret_cast<std::size_t>(slot_ptr);
      Transfer& t = *transfers[slot];
      const CURLcode code = msg->data.result;
      curl_multi_remove_handle(multi, t.easy);
      const S3Location& object = objects[index_of[slot]];
      const std::string what = "GET " + object.url();
      auto status = finish(t, code, settings_, what);
      Result<std::string>& out = results[index_of[slot]];
      if (!status.ok()) out = status.status();
      else if (!success(*status)) out = Status(Code::kHttpStatus, what + ": " + s3_error_summary(*status, t.body));
      else out = std::move(t.body);
      if (next < objects.size()) {
        start(slot);
        ++running;  // keep the loop going until the new transfer is counted
      }
    }
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  } while (running > 0);
  for (auto& t : transfers) {
    curl_easy_cleanup(t->easy);
    t->easy = nullptr;
  }
  curl_multi_cleanup(multi);
  return results;
}

Status S3Client::Put(const S3Location& object, std::string_view bytes, const S3PutFields& fields) {
  const std::string what = "PUT " + object.url();
  Transfer t;
  t.easy = static_cast<CURL*>(easy_);
  begin(t, timeout_s_, kMaxListingBytes, bytes);
  s3_prepare_put(t.easy, settings_, object, bytes.size(), sha256_hex(bytes), fields, t.headers);
  return perform(t, settings_, what).status();
}

Status S3Client::Delete(const S3Location& object) {
  const std::string what = "DELETE " + object.url();
  Transfer t;
  t.easy = static_cast<CURL*>(easy_);
  begin(t, timeout_s_, kMaxListingBytes);
  s3_prepare_delete(t.easy, settings_, object, t.headers);
  return perform(t, settings_, what).status();
}

Status S3Client::CreateBucket(std::string_view bucket) {
  const std::string what = "creating bucket '" + std::string(bucket) + "'";
  Transfer t;
  t.easy = static_cast<CURL*>(easy_);
  begin(t, timeout_s_, kMaxListingBytes);
  s3_prepare_create_bucket(t.easy, settings_, bucket, t.headers);
  return perform(t, settings_, what).status();
}

}  // namespace thumbmill
