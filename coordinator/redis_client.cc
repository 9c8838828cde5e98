#include "coordinator/redis_client.h"

#include <openssl/sha.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace thumbmill {
namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

bool valid_batch_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

/// %XX decoded (a password may hold '@' or ':' written so).
std::string percent_decoded(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    int v = 0;
    if (s[i] == '%' && i + 2 < s.size() &&
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
      out += static_cast<char>(v);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// Server states that pass: the client waits and tries again.
bool transient_error(std::string_view message) {
  for (std::string_view prefix : {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN"})
    if (message.substr(0, prefix.size()) == prefix) return true;
  return false;
}

struct ArgVector {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  explicit ArgVector(const std::vector<std::string>& args) {
    for (const std::string& a : args) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
  }
};

std::vector<std::string> eval_args(std::string_view verb, std::string_view body, const std::vector<std::string>& keys,
                                   const std::vector<std::string>& args) {
  std::vector<std::string> all{std::string(verb), std::string(body), std::to_string(keys.size())};
  all.insert(all.end(), keys.begin(), keys.end());
  all.insert(all.end(), args.begin(), args.end());
  return all;
}

}  // namespace

std::string RedisAddress::display() const {
  std::string auth = user.empty() && password.empty() ? "" : (user.empty() ? ":***@" : user + ":***@");
  const bool v6 = host.find(':') != std::string::npos;
  return "redis://" + auth + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + batch;
}

Result<RedisAddress> parse_redis_url(std::string_view url) {
  // The URL is not repeated: it may hold a password.
  const auto bad = [](const std::string& why) {
    return Status(Code::kInvalidArgument, "--queue: " + why + " (expected redis://[:PASSWORD@]HOST[:PORT]/BATCH)");
  };
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) return bad("not a redis:// URL");
  std::string_view rest = url.substr(kScheme.size());
  RedisAddress a;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = auth.find(':');
    if (colon == std::string_view::npos) return bad("the part before @ must be :PASSWORD or USER:PASSWORD");
    a.user = percent_decoded(auth.substr(0, colon));
    a.password = percent_decoded(auth.substr(colon + 1));
  }
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return bad("no batch name after the address");
  std::string_view hostport = rest.substr(0, slash);
  a.batch = std::string(rest.substr(slash + 1));
  if (!valid_batch_name(a.batch)) return bad("the batch name must be 1-64 letters, digits, '.', '_' or '-'");
  std::string_view port;
  if (!hostport.empty() && hostport.front() == '[') {
    const auto close = hostport.find(']');
    if (close == std::string_view::npos) return bad("unclosed [ in the host");
    a.host = std::string(hostport.substr(1, close - 1));
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return bad("junk after the host");
      port = hostport.substr(close + 2);
    }
  } else {
    const auto colon = hostport.find(':');
    a.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
  }
  if (a.host.empty()) return bad("no host");
  if (!port.empty()) {
    int p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) return bad("bad port");
    a.port = p;
  }
  return a;
}

long long ReplyView::integer() const {
  if (!r_) return 0;
  if (r_->type == REDIS_REPLY_INTEGER) return r_->integer;
  long long v = 0;
  if (r_->type == REDIS_REPLY_STRING) std::from_chars(r_->str, r_->str + r_->len, v);
  return v;
}

std::string_view ReplyView::str() const {
  if (!r_ || (r_->type != REDIS_REPLY_STRING && r_->type != REDIS_REPLY_STATUS && r_->type != REDIS_REPLY_ERROR))
    return {};
  return {r_->str, r_->len};
}

ReplyView ReplyView::field(std::string_view name) const {
  for (std::size_t i = 0; i + 1 < size(); i += 2)
    if ((*this)[i].str() == name) return (*this)[i + 1];
  return ReplyView();
}

RedisScript::RedisScript(std::string text) : text_(std::move(text)) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  ::SHA1(reinterpret_cast<const unsigned char*>(text_.data()), text_.size(), digest);
  char hex[2 * SHA_DIGEST_LENGTH + 1];
  for (int i = 0; i < SHA_DIGEST_LENGTH; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  sha1_ = hex;
}

Result<RedisConnection> RedisConnection::Connect(const RedisAddress& address, std::chrono::milliseconds timeout) {
  redisContext* raw = redisConnectWithTimeout(address.host.c_str(), address.port, to_timeval(timeout));
  if (!raw) return Status(Code::kNetwork, "cannot allocate a redis connection");
  RedisConnection c(raw);
  const std::string where = address.host + ":" + std::to_string(address.port);
  if (raw->err) return Status(Code::kNetwork, "redis at " + where + ": " + raw->errstr);
  c.SetTimeout(timeout);
  redisEnableKeepAlive(raw);
  if (!address.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!address.user.empty()) auth.push_back(address.user);
    auth.push_back(address.password);
    auto r = c.Command(auth);
    if (!r.ok()) {
      if (r.status().code() == Code::kNetwork) return r.status();
      return Status(Code::kInvalidArgument, "redis at " + where + " refused the password: " + r.status().message());
    }
  }
  return c;
}

void RedisConnection::SetTimeout(std::chrono::milliseconds timeout) {
  if (ctx_) redisSetTimeout(ctx_.get(), to_timeval(timeout));
}

Status RedisConnection::ConnectionError() const {
  if (!ctx_) return Status(Code::kNetwork, "redis: not connected");
  std::string why = ctx_->errstr[0] ? ctx_->errstr : "connection lost";
  return Status(Code::kNetwork, "redis: " + why);
}

Status RedisConnection::ReplyStatus(const Reply& reply) {
  const ReplyView v = reply.view();
  if (v.nil() || v.is_array() || v.is_integer() || v.is_string()) return Status::Ok();
  const std::string message(v.str());
  return Status(transient_error(message) ? Code::kNetwork : Code::kInternal, "redis: " + message);
}

Result<Reply> RedisConnection::GetReply() {
  if (broken()) return ConnectionError();
  void* raw = nullptr;  // hiredis 0.14 leaves it unset on a lost connection
  if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || !raw) return ConnectionError();
  Reply reply(static_cast<redisReply*>(raw));
  if (Status st = ReplyStatus(reply); !st.ok()) return st;
  return reply;
}

void RedisConnection::Append(const std::vector<std::string>& args) {
  if (broken()) return;
  ArgVector v(args);
  redisAppendCommandArgv(ctx_.get(), static_cast<int>(args.size()), v.ptrs.data(), v.lens.data());
}

Result<Reply> RedisConnection::Command(const std::vector<std::string>& args) {
  Append(args);
  return GetReply();
}

Status RedisConnection::Load(const RedisScript& script) {
  if (std::find(loaded_.begin(), loaded_.end(), script.sha1()) != loaded_.end()) return Status::Ok();
  auto r = Command({"SCRIPT", "LOAD", script.text()});
  if (!r.ok()) return r.status();
  loaded_.push_back(script.sha1());
  return Status::Ok();
}

void RedisConnection::AppendEval(const RedisScript& script, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args) {
  const bool loaded = std::find(loaded_.begin(), loaded_.end(), script.sha1()) != loaded_.end();
  Append(loaded ? eval_args("EVALSHA", script.sha1(), keys, args) : eval_args("EVAL", script.text(), keys, args));
}

Result<Reply> RedisConnection::Eval(const RedisScript& script, const std::vector<std::string>& keys,
                                    const std::vector<std::string>& args) {
  if (Status st = Load(script); !st.ok()) return st;
  AppendEval(script, keys, args);
  return GetReply();
}

}  // namespace thumbmill
