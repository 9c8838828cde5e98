// RedisTestServer: Debian's redis-server on an ephemeral loopback port, with
// its append-only file in a fresh temp directory, for as long as the object
// lives; stopped, killed and restarted by pid for the fault tests.
//
//   RedisTestServer redis;
//   if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
//   run_command({coordinator, "--queue", redis.url("june"), "urls.txt", "--enqueue"});
//   redis.Kill(); redis.Restart();   // the AOF brings the batch back
//
// Not available (skip, never fail) when redis-server is not installed
// (scripts/setup installs it). Once available, a server that does not start
// is a failure: the constructor throws std::runtime_error.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace thumbmill::testing {

class RedisTestServer {
 public:
  /// Starts it and waits until it answers PING (at most 20 s). With
  /// `password`, clients must AUTH.
  explicit RedisTestServer(std::string password = "");
  /// SIGTERM (then SIGKILL after 5 s) to its pid only; removes the directory.
  ~RedisTestServer();
  RedisTestServer(const RedisTestServer&) = delete;
  RedisTestServer& operator=(const RedisTestServer&) = delete;

  bool available() const { return available_; }
  const std::string& skip_reason() const { return skip_reason_; }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  /// "redis://127.0.0.1:PORT/BATCH", with ":PASSWORD@" when it has one.
  std::string url(const std::string& batch) const;

  /// SIGKILL, reaped: as a crashed server (the AOF keeps what it had).
  void Kill();
  /// Starts it again on the same port and directory, and waits until it
  /// has loaded its AOF and answers.
  void Restart();
  /// Whether it is running now.
  bool running() const { return pid_ > 0; }
  /// The server's own log (for failure messages).
  std::string log() const;

 private:
  void Start();

  bool available_ = false;
  std::string skip_reason_;
  std::string server_;    // path of redis-server
  std::string password_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path dir_;
};

}  // namespace thumbmill::testing
