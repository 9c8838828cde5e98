// Starting, killing and restarting redis-server for a test (see
// redis_test_server.h).
#include "tests/redis_test_server.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "coordinator/redis_client.h"
#include "tests/server_process.h"

namespace thumbmill::testing {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

RedisTestServer::RedisTestServer(std::string password) : password_(std::move(password)) {
  server_ = find_on_path("redis-server");
  if (server_.empty()) {
    skip_reason_ = "redis-server is not installed (scripts/setup installs it)";
    return;
  }
  std::string dir_template = (std::filesystem::temp_directory_path() / "thumbmill-redis-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = dir_template;
  available_ = true;
  // A port picked free may be taken before the server binds it: try again.
  for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
    port_ = free_loopback_port();
    try {
      Start();
    } catch (const std::runtime_error&) {
      if (attempt == 4) throw;
    }
  }
}

RedisTestServer::~RedisTestServer() {
  stop_server(pid_);
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string RedisTestServer::url(const std::string& batch) const {
  return "redis://" + (password_.empty() ? "" : ":" + password_ + "@") + "127.0.0.1:" + std::to_string(port_) + "/" +
         batch;
}

std::string RedisTestServer::log() const {
  std::ifstream in(dir_ / "redis.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void RedisTestServer::Start() {
  // appendfsync no: every write reaches the AOF file (the page cache) before
  // its reply, so a SIGKILLed server loses nothing. The default, everysec,
  // postpones those writes by up to 2 s while a background fsync is still
  // running (a busy disk, or the base file made at start), and a kill then
  // loses writes the clients were told were done.
  std::vector<std::string> args = {server_,         "--port",        std::to_string(port_), "--bind",
                                   "127.0.0.1",     "--save",        "",                    "--appendonly",
                                   "yes",           "--appendfsync", "no",                  "--dir",
                                   dir_.string(),   "--logfile",     (dir_ / "redis.log").string(),
                                   "--daemonize",   "no"};
  if (!password_.empty()) args.insert(args.end(), {"--requirepass", password_});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test, even a crashed one
    if (::getppid() != parent) ::_exit(1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Ready when it answers PING (LOADING while it replays its AOF does not count).
  RedisAddress address{"127.0.0.1", port_, "", password_, "x"};
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited at start: " + log());
    }
    if (auto c = RedisConnection::Connect(address, std::chrono::milliseconds(500)); c.ok())
      if (auto pong = c->Command({"PING"}); pong.ok() && pong->str() == "PONG") return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  throw std::runtime_error("redis-server did not answer within 20 s: " + log());
}

void RedisTestServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisTestServer::Restart() {
  Kill();
  Start();
}

}  // namespace thumbmill::testing
