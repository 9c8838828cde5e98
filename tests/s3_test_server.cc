// Starting and stopping s3rver for a test (see s3_test_server.h).
#include "tests/s3_test_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "shared/s3_client.h"
#include "tests/server_process.h"

namespace thumbmill::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::filesystem::path source_tree() {
  const char* dir = std::getenv("THUMBMILL_SOURCE_DIR");
  return dir ? dir : ".";
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

S3TestServer::S3TestServer(const std::vector<std::string>& buckets) {
  const std::string node = find_on_path("node");
  const std::filesystem::path dir = source_tree() / "tests" / "s3rver";
  if (node.empty()) {
    skip_reason_ = "node is not installed (scripts/setup installs it)";
    return;
  }
  if (!std::filesystem::exists(dir / "node_modules" / "@20minutes" / "s3rver")) {
    skip_reason_ = "tests/s3rver/node_modules is missing (scripts/setup runs npm ci there)";
    return;
  }
  std::string root_template = (std::filesystem::temp_directory_path() / "thumbmill-s3rver-XXXXXX").string();
  if (::mkdtemp(root_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  root_ = root_template;
  directory_ = root_ / "data";
  std::filesystem::create_directories(directory_);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const std::string serve = (dir / "serve.js").string();
  const std::string err_path = (root_ / "stderr").string();
  std::vector<std::string> args = {node, "--openssl-legacy-provider", serve, "0", directory_.string()};
  args.insert(args.end(), buckets.begin(), buckets.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // The server dies with the test, even one that crashed before its
    // destructor ran.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(out[1], 1);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (err >= 0) ::dup2(err, 2);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);

  // The "ready PORT" line, or the end of the output when it died first.
  std::string line;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{out[0], POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buffer[256];
    const ssize_t n = ::read(out[0], buffer, sizeof buffer);
    if (n <= 0) break;
    line.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  if (line.rfind("ready ", 0) == 0) port_ = std::atoi(line.c_str() + 6);
  if (port_ <= 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    const std::string err = read_all(err_path);
    std::filesystem::remove_all(root_);
    throw std::runtime_error("s3rver did not start: '" + line + "' " + err);
  }
}

S3TestServer::~S3TestServer() {
  stop_server(pid_);
  std::error_code ec;
  if (!root_.empty()) std::filesystem::remove_all(root_, ec);
}

std::string S3TestServer::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

S3Settings S3TestServer::settings() const {
  S3Settings s;
  s.endpoint = endpoint();
  s.region = "us-east-1";
  s.path_style = true;
  s.access_key_id = kAccessKeyId;
  s.secret_access_key = kSecretAccessKey;
  return s;
}

std::map<std::string, std::string> S3TestServer::env() const {
  return {
      {"AWS_ACCESS_KEY_ID", kAccessKeyId},
      {"AWS_SECRET_ACCESS_KEY", kSecretAccessKey},
      {"AWS_ENDPOINT_URL", endpoint()},
      {"AWS_REGION", "us-east-1"},
      {"AWS_SHARED_CREDENTIALS_FILE", (root_ / "no-credentials").string()},
      {"AWS_CONFIG_FILE", (root_ / "no-config").string()},
      // Empty counts as unset (resolve_s3_settings): a caller's own values
      // of these cannot change where a test's requests go.
      {"AWS_ENDPOINT_URL_S3", ""},
      {"AWS_PROFILE", ""},
      {"AWS_SESSION_TOKEN", ""},
  };
}

void S3TestServer::CreateBucket(const std::string& bucket) const {
  S3Client client(settings());
  if (Status s = client.CreateBucket(bucket); !s.ok()) throw std::runtime_error(s.message());
}

}  // namespace thumbmill::testing
