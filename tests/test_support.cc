#include "tests/test_support.h"

#include "shared/proc_stat.h"

#include <algorithm>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <vips/vips8>

namespace thumbmill::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::filesystem::path env_path(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::filesystem::path(value) : std::filesystem::path(fallback);
}

/// fork + exec with stdin from `stdin_path` and output to files; in the child
/// only. Never returns.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                             const std::string& stdin_path, const std::string& out_path, const std::string& err_path) {
  const int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
  const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
  ::_exit(127);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// Waits for `pid` up to `timeout_s`; -1 if it is still running.
int wait_with_timeout(pid_t pid, double timeout_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0) return -1;
    if (Clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::filesystem::path build_dir() { return env_path("THUMBMILL_BUILD_DIR", "build"); }
std::filesystem::path source_dir() { return env_path("THUMBMILL_SOURCE_DIR", "."); }

ScratchDir::ScratchDir(const std::string& tag) {
  std::string pattern = (env_path("TMPDIR", "/tmp") / ("tmtest-" + tag + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options) {
  ScratchDir io("cmd");
  const std::string in = options.stdin_text.empty() ? "" : (io / "in").string();
  if (!in.empty()) write_file(in, options.stdin_text);
  const auto start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, options.env, in, (io / "out").string(), (io / "err").string());
  CommandResult r;
  r.pid = pid;
  r.exit_code = wait_with_timeout(pid, options.timeout_s);
  if (r.exit_code == -1) {
    r.timed_out = true;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.out = read_file(io / "out");
  r.err = read_file(io / "err");
  return r;
}

Background::Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  pid_ = ::fork();
  if (pid_ == 0) exec_child(argv, env, "", (logs_ / "out").string(), (logs_ / "err").string());
}

Background::~Background() {
  if (status_ == -1 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

int Background::Wait(double timeout_s) {
  if (status_ == -1) status_ = wait_with_timeout(pid_, timeout_s);
  return status_;
}

std::string Background::err() const { return read_file(logs_ / "err"); }

Server::Server(const std::filesystem::path& dir, int delay_ms) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    const std::string serve = (source_dir() / "scripts" / "serve").string();
    const std::string delay = std::to_string(delay_ms);
    ::execlp("python3", "python3", serve.c_str(), dir.c_str(), "--port", "0", "--quiet", "--delay-ms", delay.c_str(),
             "--max-seconds", "3600", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string line;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(fds[0]);
  const auto colon = line.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("serve did not start: '" + line + "'");
  port_ = std::atoi(line.c_str() + colon + 1);
}

Server::~Server() {
  ::kill(pid_, SIGTERM);
  if (wait_with_timeout(pid_, 5) == -1) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string Server::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + path;
}

void make_images(const std::filesystem::path& dir, int count, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {(build_dir() / "scripts" / "make-images").string(), "--out", dir.string(),
                                   "--count", std::to_string(count)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const CommandResult r = run_command(argv);
  if (r.exit_code != 0) throw std::runtime_error("make-images failed: " + r.err);
}

PhotoSet::PhotoSet(const std::string& tag, int count, const std::vector<std::string>& extra) : dir(tag) {
  make_images(dir.path(), count, extra);
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().filename().string()[0] != '.') names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
}

std::filesystem::path coordinator_exe() { return build_dir() / "coordinator" / "coordinator"; }
std::filesystem::path coordinator_threaded_exe() { return build_dir() / "coordinator" / "coordinator-threaded"; }

std::set<std::string> our_shm_segments() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("thumbmill-", 0) == 0) names.insert(name);
  }
  return names;
}

std::vector<std::string> run_leftovers(pid_t coordinator) {
  std::vector<std::string> left;
  const std::string tag = "thumbmill-" + std::to_string(coordinator) + "-";
  for (const std::string& name : our_shm_segments())
    if (name.rfind(tag, 0) == 0) left.push_back("/dev/shm/" + name);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    // Children rename themselves ("thumbmill: worker 1"), so their command
    // lines no longer name the segment: the mapping of it does (even once
    // it is unlinked).
    const std::string cmdline = read_file(e.path() / "cmdline");
    if (cmdline.find(tag) != std::string::npos || read_file(e.path() / "maps").find("/dev/shm/" + tag) != std::string::npos)
      left.push_back("process " + e.path().filename().string());
  }
  return left;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> kids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) kids.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return kids;
}

std::vector<pid_t> children_running(pid_t parent, const std::filesystem::path& binary) {
  std::vector<pid_t> out;
  for (pid_t pid : children_of(parent)) {
    std::error_code ec;
    if (std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec) == binary) out.push_back(pid);
  }
  return out;
}

char process_state(pid_t pid) {
  const auto stat = read_proc_stat(pid);
  return stat ? stat->state : '?';
}

std::pair<int, int> image_size(const std::filesystem::path& path) {
  static const bool started = vips_init("thumbmill-tests") == 0;
  if (!started) throw std::runtime_error("libvips did not start");
  vips::VImage image = vips::VImage::new_from_file(path.c_str());
  return {image.width(), image.height()};
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<nlohmann::json> read_report(const std::filesystem::path& path, ReportCheck check) {
  std::vector<nlohmann::json> entries;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) entries.push_back(nlohmann::json::parse(line));
  // Every report a test reads is held to the documented schema
  // (coordinator/report.schema.json). Debian's python3, where scripts/setup
  // installs python3-jsonschema; a checker that cannot run is a failure.
  if (check == ReportCheck::kSchema && !entries.empty()) {
    const CommandResult result =
        run_command({"/usr/bin/python3", (source_dir() / "scripts" / "check-report").string(), path.string()});
    if (result.exit_code != 0)
      throw std::runtime_error("report " + path.string() + " does not match its schema:\n" + result.out + result.err);
  }
  return entries;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace thumbmill::testing
