#include "coordinator/process_crew.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string_view>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>

#include "shared/wire.h"

namespace bp = boost::process;

namespace thumbmill {
namespace {

/// Runs in the child between fork and exec; only async-signal-safe calls.
struct ChildSetup : bp::extend::handler {
  pid_t parent;
  int request_fd;
  int result_fd;
  int options_fd;

  template <class Executor>
  void on_exec_setup(Executor&) const {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(kChildFatalExit);  // parent died before prctl
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::setpgid(0, 0);
    // Move both ends out of the way first: either may already sit on 3 or 4.
    const int request = request_fd >= 0 ? ::fcntl(request_fd, F_DUPFD_CLOEXEC, 10) : -1;
    const int result = ::fcntl(result_fd, F_DUPFD_CLOEXEC, 10);
    const int options = ::fcntl(options_fd, F_DUPFD_CLOEXEC, 10);
    if (result < 0 || options < 0 || (request_fd >= 0 && request < 0)) ::_exit(kChildFatalExit);
    if (request >= 0 && ::dup2(request, kRequestFd) < 0) ::_exit(kChildFatalExit);  // dup2 clears close-on-exec
    if (::dup2(result, kResultFd) < 0) ::_exit(kChildFatalExit);
    if (::dup2(options, kOptionsFd) < 0) ::_exit(kChildFatalExit);
    // The child gets 0-2, kRequestFd (downloader only), kResultFd and
    // kOptionsFd (which it closes once read), and nothing else, whatever the coordinator had open without
    // close-on-exec (an inherited fd, a library's file). Marked
    // close-on-exec rather than closed, so that Boost.Process's own pipe,
    // which reports a failed exec to the parent, lives until the exec.
    static_assert(kRequestFd < kResultFd && kResultFd < kOptionsFd);
    if (request < 0) ::fcntl(kRequestFd, F_SETFD, FD_CLOEXEC);  // EBADF when none: fine
    if (::close_range(kOptionsFd + 1, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      if (errno != EINVAL && errno != ENOSYS) ::_exit(kChildFatalExit);
      // Kernels before 5.11 (no CLOSE_RANGE_CLOEXEC) or 5.9 (no close_range).
      for (int fd = kOptionsFd + 1; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
};

ChildUsage usage_of(const rusage& ru) {
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return {seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss};
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::kDownloader: return "downloader";
    case Role::kWorker: return "worker";
    case Role::kUploader: return "uploader";
  }
  return "child";
}

std::string ChildExit::Describe() const {
  if (!signaled) return "exit " + std::to_string(exit_code);
  return "signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
}

ProcessCrew::ProcessCrew(std::filesystem::path downloader_exe, std::filesystem::path worker_exe,
                         std::filesystem::path uploader_exe, ChildCommand command)
    : downloader_exe_(std::move(downloader_exe)),
      worker_exe_(std::move(worker_exe)),
      uploader_exe_(std::move(uploader_exe)),
      command_(std::move(command)) {}

ProcessCrew::~ProcessCrew() {
  // Last resort on a fatal path; an orderly run has reaped everyone already.
  for (const auto& [pid, member] : children_) ::kill(pid, SIGKILL);
  for (const auto& [pid, member] : children_) ::waitpid(pid, nullptr, 0);
}

Result<int> ProcessCrew::OptionsFd() {
  if (options_fd_.valid()) return options_fd_.get();
  UniqueFd fd(::memfd_create("thumbmill-options", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return Status::FromErrno("cannot hand the options to children: memfd_create");
  std::string_view text = command_.options_json;
  while (!text.empty()) {
    const ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("cannot hand the options to children: write");
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  // Sealed: no child can change what the others read.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0)
    return Status::FromErrno("cannot hand the options to children: seal");
  options_fd_ = std::move(fd);
  return options_fd_.get();
}

std::string ProcessCrew::TitleFor(Role role, int* index) const {
  *index = 0;
  if (role != Role::kWorker) return std::string(role_name(role));
  // The lowest number no running worker has: names stay 1..N across restarts.
  std::set<int> taken;
  for (const auto& [pid, member] : children_)
    if (member.role == Role::kWorker) taken.insert(member.index);
  *index = 1;
  while (taken.count(*index)) ++*index;
  return "worker " + std::to_string(*index);
}

Result<std::int32_t> ProcessCrew::Start(Role role, int request_fd, int result_fd) {
  const auto& exe = role == Role::kDownloader ? downloader_exe_ : role == Role::kUploader ? uploader_exe_ : worker_exe_;
  auto close_ends = [&] {
    if (request_fd >= 0) ::close(request_fd);
    ::close(result_fd);
  };
  auto options_fd = OptionsFd();
  if (!options_fd.ok()) {
    close_ends();
    return options_fd.status();
  }
  int index = 0;
  std::vector<std::string> args = command_.args;
  for (std::string& a : child_title_arguments(TitleFor(role, &index))) args.push_back(std::move(a));
  pid_t pid = -1;
  try {
    bp::child child(bp::exe = exe.string(), bp::args = args,
                    ChildSetup{{}, ::getpid(), request_fd, result_fd, *options_fd});
    pid = child.id();
    child.detach();  // reaped by Reap(), never by Boost.Process
  } catch (const std::exception& e) {
    close_ends();
    return Status(Code::kInternal, "cannot start " + exe.string() + ": " + e.what());
  }
  close_ends();
  children_.emplace(pid, Member{role, index});
  return static_cast<std::int32_t>(pid);
}

std::vector<ChildExit> ProcessCrew::Reap() {
  std::vector<ChildExit> exits;
  for (;;) {
    int status = 0;
    rusage ru{};
    const pid_t pid = ::wait4(-1, &status, WNOHANG, &ru);
    if (pid <= 0) break;  // 0: none ready; -1/ECHILD: none left
    auto it = children_.find(pid);
    if (it == children_.end()) continue;
    ChildExit e;
    e.id = pid;
    e.role = it->second.role;
    e.signaled = WIFSIGNALED(status);
    e.signal = e.signaled ? WTERMSIG(status) : 0;
    e.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    e.usage = usage_of(ru);
    children_.erase(it);
    exits.push_back(e);
  }
  return exits;
}

bool ProcessCrew::Kill(std::int32_t id, int signal) {
  if (!children_.count(id)) return false;
  return ::kill(id, signal) == 0;
}

std::filesystem::path find_sibling_executable(const std::string& name) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const auto dir = self.parent_path();
  std::vector<std::filesystem::path> candidates;
  // meson's build tree: only where it really is one, so an installed copy
  // never picks up some unrelated ../worker/worker.
  if (std::filesystem::exists(dir.parent_path() / "build.ninja", ec)) candidates.push_back(dir.parent_path() / name / name);
  if (*THUMBMILL_BIN_TO_HELPERS) candidates.push_back(dir / THUMBMILL_BIN_TO_HELPERS / name);
  candidates.push_back(std::filesystem::path(THUMBMILL_HELPER_DIR) / name);
  for (const auto& candidate : candidates)
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal();
  return {};
}

}  // namespace thumbmill
