// AwsConfig: where S3 requests go and who signs them, resolved once in the
// coordinator the way the AWS CLI, s3cmd and rclone users expect:
//
//   flags (--s3-endpoint, --s3-region, --s3-path-style)
//     win over the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//     AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
//     AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_PROFILE)
//     which wins over the profile files (AWS_SHARED_CREDENTIALS_FILE or
//     ~/.aws/credentials; AWS_CONFIG_FILE or ~/.aws/config, whose
//     "[profile NAME]" sections may hold region and endpoint_url).
//
// Field by field, the first source that has it wins:
//   keys      AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN);
//             else the profile's aws_access_key_id + aws_secret_access_key
//             (+ aws_session_token), credentials file before config file.
//             Half a pair is an error, never a silent anonymous run.
//   region    --s3-region, AWS_REGION, AWS_DEFAULT_REGION, the profile's
//             region, "us-east-1".
//   endpoint  --s3-endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the
//             profile's nested "s3 =\n  endpoint_url = ...", its
//             endpoint_url; none: AWS.
//   path      --s3-path-style, the profile's nested s3 addressing_style =
//             path, or automatic for an IP address or localhost endpoint.
// The profile is AWS_PROFILE, else "default": "[NAME]" in the credentials
// file, "[profile NAME]" (or "[default]") in the config file. "~" in a file
// variable is the EnvLookup's HOME; an empty variable counts as unset.
//
// The resolved S3Settings reach children inside the options they read from
// their options descriptor (never argv). Secrets are never put in a message:
// describe() names the key id's last 4 characters at most.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

struct S3Settings {
  // scheme://host[:port] without a trailing slash, e.g. "http://127.0.0.1:4568".
  // Empty: AWS itself, https://s3.<region>.amazonaws.com.
  // Given an endpoint, a trailing '/' is removed and the scheme lowercased.
  std::string endpoint;
  std::string region = "us-east-1";
  // Path-style URLs (endpoint/bucket/key) instead of virtual-hosted ones
  // (bucket.endpoint/key). Local servers need path style; it is chosen
  // automatically for an endpoint whose host is an IP address or "localhost".
  bool path_style = false;
  std::string access_key_id;      // empty: anonymous (unsigned) requests
  std::string secret_access_key;
  std::string session_token;      // empty: none

  bool anonymous() const { return access_key_id.empty(); }
  /// "endpoint http://127.0.0.1:4568, region us-east-1, path-style, key
  /// ...WXYZ" (no secret; of a key id of 8 characters or fewer, half).
  std::string describe() const;
  bool operator==(const S3Settings&) const = default;
};

/// What the command line says (empty / false: not given).
struct S3Flags {
  // Given an endpoint, a trailing '/' is removed and the scheme lowercased.
  std::string endpoint;
  std::string region;
  bool path_style = false;
};

/// Reads one environment variable; nullopt when unset. Tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
/// The process's environment (getenv).
EnvLookup process_environment();

/// Resolves the settings by the precedence above. Profile files are read
/// only when present; a missing file is no error, a named AWS_PROFILE that
/// is in neither file is (kInvalidArgument), as is an endpoint that is not
/// an http(s) URL of a host without path, half a key pair, or a region with
/// characters other than a-z 0-9 '-'. An existing file that cannot be read
/// is kIoError. No message holds a secret.
Result<S3Settings> resolve_s3_settings(const S3Flags& flags, const EnvLookup& env);

}  // namespace thumbmill
