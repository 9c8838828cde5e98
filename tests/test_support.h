// Helpers for tests that run the real executables: temp directories, child
// commands with a time limit, the loopback server, and generated images.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace thumbmill::testing {

/// The build and source trees, from THUMBMILL_BUILD_DIR / THUMBMILL_SOURCE_DIR
/// (set by meson for the tests).
std::filesystem::path build_dir();
std::filesystem::path source_dir();

/// A fresh directory under $TMPDIR, removed with its contents at the end.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& tag = "test");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  pid_t pid = -1;
  int exit_code = -1;  // 128 + signal when killed by one
  std::string out;
  std::string err;
  bool timed_out = false;
  double seconds = 0;
};

struct CommandOptions {
  std::string stdin_text;                      // fed to standard input
  std::map<std::string, std::string> env;      // added to the environment
  double timeout_s = 300;                      // then SIGKILL, timed_out = true
};

/// Runs `argv` (argv[0] is a path) and waits for it.
CommandResult run_command(const std::vector<std::string>& argv, const CommandOptions& options = {});

/// A started child process with output going to files; killed on destruction.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});
  ~Background();
  pid_t pid() const { return pid_; }
  /// Waits up to `timeout_s`; returns the exit code (128 + signal), or -1.
  int Wait(double timeout_s);
  std::string err() const;

 private:
  pid_t pid_ = -1;
  ScratchDir logs_{"bg"};
  int status_ = -1;
};

/// scripts/serve on a free loopback port, stopped on destruction.
class Server {
 public:
  explicit Server(const std::filesystem::path& dir, int delay_ms = 0);
  ~Server();
  std::string url(const std::string& path) const;  // path without leading '/'
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

/// Runs the built make-images into `dir`; extra arguments are appended.
void make_images(const std::filesystem::path& dir, int count, const std::vector<std::string>& extra = {});

/// `count` generated photos (make-images, `extra` appended) in a scratch
/// directory of their own: what most end-to-end suites make once and share.
struct PhotoSet {
  PhotoSet(const std::string& tag, int count, const std::vector<std::string>& extra = {});
  ScratchDir dir;
  std::vector<std::string> names;  // file names, sorted; hidden files left out
};

/// The built coordinator, processes and threaded builds.
std::filesystem::path coordinator_exe();
std::filesystem::path coordinator_threaded_exe();

/// Names in /dev/shm that start with "thumbmill-".
std::set<std::string> our_shm_segments();

/// What a coordinator run with pid `coordinator` left behind: its
/// /dev/shm segment ("thumbmill-<pid>-<start>") and live processes that
/// map that segment or name it on their command line (it and its children).
/// Empty when nothing.
std::vector<std::string> run_leftovers(pid_t coordinator);

/// Pids of live processes whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent);

/// Live processes running `binary` whose parent is `parent`.
std::vector<pid_t> children_running(pid_t parent, const std::filesystem::path& binary);

/// The state letter of /proc/<pid>/stat: 'R' running, 'S' sleeping, 'T'
/// stopped, 'Z' zombie; '?' when there is no such process.
char process_state(pid_t pid);

/// Waits until `condition` holds, checking every 5 ms, for at most
/// `timeout`; returns whether it holds. For what another process or thread
/// brings about (a file appearing, a child starting), never to let time pass.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

/// Width and height of an image file, read with libvips.
std::pair<int, int> image_size(const std::filesystem::path& path);

std::string read_file(const std::filesystem::path& path);
/// Whether read_report holds a report to its schema.
enum class ReportCheck {
  kSchema,  // every entry validated (scripts/check-report); throws when one is not
  kNone,    // for polling a report while its run goes on (validating costs a process)
};

/// The entries of a --report file, one JSON object per line.
std::vector<nlohmann::json> read_report(const std::filesystem::path& path, ReportCheck check = ReportCheck::kSchema);
void write_file(const std::filesystem::path& path, const std::string& text);

}  // namespace thumbmill::testing
