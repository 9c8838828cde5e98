// S3TestServer: @20minutes/s3rver (tests/s3rver) on an ephemeral loopback
// port, in a fresh temp directory, for as long as the object lives. It checks
// SigV4 signatures (a wrong secret is refused) but not payload hashes,
// chunked uploads or anonymous writes (../shared/notes/s3.md).
//
//   S3TestServer server({"photos", "thumbs"});
//   if (!server.available()) THUMBMILL_SKIP(server.skip_reason());
//   S3Client client(server.settings());          // put sources, read results
//   CommandOptions options;
//   options.env = server.env();                   // AWS_* for the coordinator
//   run_command({coordinator, "s3://photos/", "--out", "s3://thumbs/t/"}, options);
//
// Not available (skip, never fail) when node or the npm package is missing
// (scripts/setup installs both). Once available, a server that does not
// start is a failure: the constructor throws std::runtime_error.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "shared/aws_config.h"

namespace thumbmill::testing {

class S3TestServer {
 public:
  /// Starts the server with `buckets` created, and waits for its "ready"
  /// line (at most 60 s). The source tree is $THUMBMILL_SOURCE_DIR.
  explicit S3TestServer(const std::vector<std::string>& buckets = {});
  /// SIGTERM, then SIGKILL after 5 s, to its pid only; removes the directory.
  ~S3TestServer();
  S3TestServer(const S3TestServer&) = delete;
  S3TestServer& operator=(const S3TestServer&) = delete;

  bool available() const { return pid_ > 0; }
  /// Why not available (node or tests/s3rver/node_modules missing).
  const std::string& skip_reason() const { return skip_reason_; }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  /// "http://127.0.0.1:PORT".
  std::string endpoint() const;
  /// Path style, region us-east-1, keys S3RVER / S3RVER.
  S3Settings settings() const;
  /// The environment a child needs to reach it: AWS_ACCESS_KEY_ID,
  /// AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION, and the two profile
  /// file variables pointing at files that do not exist, so a developer's
  /// ~/.aws never leaks into a test; AWS_ENDPOINT_URL_S3, AWS_PROFILE and
  /// AWS_SESSION_TOKEN empty (which counts as unset).
  std::map<std::string, std::string> env() const;
  /// Where it keeps its buckets (a bucket is a directory under it).
  const std::filesystem::path& directory() const { return directory_; }
  /// Creates one more bucket; throws std::runtime_error when refused.
  void CreateBucket(const std::string& bucket) const;

  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string skip_reason_;
  std::filesystem::path root_;       // temp dir: data/ and the server's stderr
  std::filesystem::path directory_;  // root_/data
};

}  // namespace thumbmill::testing
