// Resolving S3Settings from flags, the environment and the AWS profile files.
#include "shared/aws_config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "shared/url.h"

namespace thumbmill {
namespace {

// One profile file: section name -> key -> value. Nested settings (a key
// with an empty value followed by indented "sub = value" lines, as the AWS
// CLI writes "s3 =\n  endpoint_url = ...") are stored as "key.sub".
using IniSection = std::map<std::string, std::string>;
using IniFile = std::map<std::string, IniSection>;

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return "";
  const auto last = s.find_last_not_of(" \t\r");
  return std::string(s.substr(first, last - first + 1));
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

IniFile parse_ini(std::istream& in) {
  IniFile file;
  IniSection* section = nullptr;
  std::string parent;  // the key whose nested lines follow, "" when none
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = &file[trim(std::string_view(t).substr(1, t.size() - 2))];
      parent.clear();
      continue;
    }
    const auto eq = t.find('=');
    if (section == nullptr || eq == std::string::npos) continue;
    const std::string key = lower(trim(std::string_view(t).substr(0, eq)));
    const std::string value = trim(std::string_view(t).substr(eq + 1));
    const bool indented = line[0] == ' ' || line[0] == '\t';
    if (indented && !parent.empty()) {
      (*section)[parent + "." + key] = value;
      continue;
    }
    (*section)[key] = value;
    parent = value.empty() ? key : "";
  }
  return file;
}

/// The file at `path` parsed; an empty IniFile when it does not exist;
/// kIoError when it exists but cannot be read.
Result<IniFile> read_ini(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT || errno == ENOTDIR) return IniFile{};
    return Status::FromErrno("cannot read the AWS profile file " + path);
  }
  return parse_ini(in);
}

std::optional<std::string> non_empty(const EnvLookup& env, std::string_view name) {
  auto value = env(name);
  if (value && value->empty()) return std::nullopt;
  return value;
}

/// `path` with a leading "~" taken as $HOME.
std::string expand_home(const std::string& path, const EnvLookup& env) {
  if (path == "~" || path.rfind("~/", 0) == 0) return env("HOME").value_or("") + path.substr(1);
  return path;
}

std::optional<std::string> get(const IniSection* section, const std::string& key) {
  if (section == nullptr) return std::nullopt;
  const auto it = section->find(key);
  if (it == section->end() || it->second.empty()) return std::nullopt;
  return it->second;
}

/// The host of an endpoint "scheme://host[:port]" ("[::1]" for IPv6).
std::string endpoint_host(std::string_view endpoint) {
  std::string_view authority = endpoint.substr(endpoint.find("://") + 3);
  if (!authority.empty() && authority.front() == '[') return std::string(authority.substr(0, authority.find(']') + 1));
  return std::string(authority.substr(0, authority.find(':')));
}

bool is_ipv4(std::string_view host) {
  int dots = 0;
  int digits = 0;
  for (char c : host) {
    if (c == '.') {
      if (digits == 0) return false;
      ++dots;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      ++digits;
    } else {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

/// Whether virtual-hosted URLs cannot work for this endpoint: an IP address
/// or localhost has no DNS names below it for buckets.
bool needs_path_style(std::string_view endpoint) {
  const std::string host = lower(endpoint_host(endpoint));
  const std::string_view tail = ".localhost";
  return host.front() == '[' || is_ipv4(host) || host == "localhost" ||
         (host.size() > tail.size() && host.compare(host.size() - tail.size(), tail.size(), tail) == 0);
}

/// `text` checked and normalised to "scheme://host[:port]". `from` names
/// where it came from, for the message.
Result<std::string> normalize_endpoint(std::string text, const std::string& from) {
  const auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "the S3 endpoint '" + redact_credentials(text) + "' (" + from +
                                              ") is not usable: " + why);
  };
  const auto sep = text.find("://");
  if (sep == std::string::npos) return bad("it is not an http:// or https:// URL");
  const std::string scheme = lower(text.substr(0, sep));
  if (scheme != "http" && scheme != "https") return bad("it is not an http:// or https:// URL");
  std::string rest = text.substr(sep + 3);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty()) return bad("no host");
  if (rest.find_first_of("/?#") != std::string::npos) return bad("an endpoint has no path or query");
  if (rest.find('@') != std::string::npos) return bad("credentials belong in AWS_ACCESS_KEY_ID, not the URL");
  const std::string endpoint = scheme + "://" + rest;
  if (auto parsed = parse_url(endpoint); !parsed.ok()) return bad(parsed.status().message());
  return endpoint;
}

/// A credential pair from one source, or an error naming the half missing.
Status take_keys(std::optional<std::string> id, std::optional<std::string> secret, const std::string& id_name,
                 const std::string& secret_name, S3Settings& out) {
  if (id.has_value() != secret.has_value())
    return Status(Code::kInvalidArgument, (id ? id_name : secret_name) + " is set but " +
                                              (id ? secret_name : id_name) + " is not");
  out.access_key_id = id.value_or("");
  out.secret_access_key = secret.value_or("");
  return Status::Ok();
}

}  // namespace

std::string S3Settings::describe() const {
  std::string text = "endpoint " + (endpoint.empty() ? "https://s3." + region + ".amazonaws.com" : endpoint);
  text += ", region " + region;
  if (path_style) text += ", path-style";
  if (anonymous()) {
    text += ", anonymous";
  } else {
    const std::size_t shown = access_key_id.size() > 8 ? 4 : access_key_id.size() / 2;
    text += ", key ..." + access_key_id.substr(access_key_id.size() - shown);
    if (!session_token.empty()) text += " with a session token";
  }
  return text;
}

EnvLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Result<S3Settings> resolve_s3_settings(const S3Flags& flags, const EnvLookup& env) {
  const auto named_profile = non_empty(env, "AWS_PROFILE");
  const std::string profile = named_profile.value_or("default");
  const std::string credentials_path =
      expand_home(non_empty(env, "AWS_SHARED_CREDENTIALS_FILE").value_or("~/.aws/credentials"), env);
  const std::string config_path = expand_home(non_empty(env, "AWS_CONFIG_FILE").value_or("~/.aws/config"), env);

  auto credentials_file = read_ini(credentials_path);
  if (!credentials_file.ok()) return credentials_file.status();
  auto config_file = read_ini(config_path);
  if (!config_file.ok()) return config_file.status();

  auto find = [](const IniFile& file, const std::string& name) -> const IniSection* {
    const auto it = file.find(name);
    return it == file.end() ? nullptr : &it->second;
  };
  const IniSection* credentials = find(*credentials_file, profile);
  // The config file names "[profile NAME]"; the default profile may also be
  // plain "[default]".
  const IniSection* config = find(*config_file, "profile " + profile);
  if (config == nullptr && profile == "default") config = find(*config_file, "default");
  if (named_profile && credentials == nullptr && config == nullptr)
    return Status(Code::kInvalidArgument, "AWS_PROFILE names the profile '" + profile + "', which is in neither " +
                                              credentials_path + " nor " + config_path);

  S3Settings settings;
  // Keys: the environment's pair, else the profile's (credentials file
  // first, then the config file, as the AWS CLI reads them).
  const auto env_id = non_empty(env, "AWS_ACCESS_KEY_ID");
  const auto env_secret = non_empty(env, "AWS_SECRET_ACCESS_KEY");
  if (env_id || env_secret) {
    if (Status s = take_keys(env_id, env_secret, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", settings); !s.ok())
      return s;
    settings.session_token = non_empty(env, "AWS_SESSION_TOKEN").value_or("");
  } else {
    for (const auto& [section, path] : {std::pair{credentials, credentials_path}, std::pair{config, config_path}}) {
      auto id = get(section, "aws_access_key_id");
      auto secret = get(section, "aws_secret_access_key");
      if (!id && !secret) continue;
      const std::string where = " in profile '" + profile + "' of " + path;
      if (Status s = take_keys(id, secret, "aws_access_key_id" + where, "aws_secret_access_key", settings); !s.ok())
        return s;
      settings.session_token = get(section, "aws_session_token").value_or("");
      break;
    }
  }

  if (!flags.region.empty()) {
    settings.region = flags.region;
  } else if (auto r = non_empty(env, "AWS_REGION")) {
    settings.region = *r;
  } else if (auto r = non_empty(env, "AWS_DEFAULT_REGION")) {
    settings.region = *r;
  } else if (auto r = get(config, "region")) {
    settings.region = *r;
  }
  // The region goes into the signing scope "aws:amz:REGION:s3" and AWS's
  // host name: nothing else but what region names are made of.
  if (settings.region.empty() ||
      settings.region.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
    return Status(Code::kInvalidArgument, "the S3 region '" + settings.region + "' is not a region name (a-z, 0-9, '-')");

  std::optional<std::pair<std::string, std::string>> endpoint;  // value, where from
  if (!flags.endpoint.empty()) {
    endpoint.emplace(flags.endpoint, "--s3-endpoint");
  } else if (auto e = non_empty(env, "AWS_ENDPOINT_URL_S3")) {
    endpoint.emplace(*e, "AWS_ENDPOINT_URL_S3");
  } else if (auto e = non_empty(env, "AWS_ENDPOINT_URL")) {
    endpoint.emplace(*e, "AWS_ENDPOINT_URL");
  } else if (auto e = get(config, "s3.endpoint_url")) {
    endpoint.emplace(*e, "endpoint_url under s3 in " + config_path);
  } else if (auto e = get(config, "endpoint_url")) {
    endpoint.emplace(*e, "endpoint_url in " + config_path);
  }
  if (endpoint) {
    auto normalized = normalize_endpoint(endpoint->first, endpoint->second);
    if (!normalized.ok()) return normalized.status();
    settings.endpoint = *normalized;
  }

  settings.path_style = flags.path_style || get(config, "s3.addressing_style") == "path" ||
                        (!settings.endpoint.empty() && needs_path_style(settings.endpoint));
  return settings;
}

}  // namespace thumbmill
