// ProcessCrew: children as real processes, after nginx's ngx_process.c.
//
// Each child is its own executable (so `top` shows "downloader" and "worker"
// rows with their own CPU), spawned with Boost.Process (fork + exec) and
// detached: this class alone reaps them, with wait4(-1, WNOHANG), which also
// yields the kernel's accounting of each child. Every child:
//   - dies with the coordinator (PR_SET_PDEATHSIG = SIGKILL, armed before
//     exec, with a check that the parent has not already gone);
//   - is put in its own process group, so a Ctrl-C on the terminal reaches
//     only the coordinator, which then stops the run in order;
//   - starts with an empty signal mask (the coordinator blocks the signals it
//     reads through a signalfd);
//   - inherits no descriptor but 0, 1, 2 and its two pipe ends (3 and 4):
//     everything else the coordinator opens is close-on-exec.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "coordinator/crew.h"

namespace thumbmill {

class ProcessCrew : public Crew {
 public:
  /// `args` are appended to every child's command line (segment, options).
  ProcessCrew(std::filesystem::path downloader_exe, std::filesystem::path worker_exe,
              std::vector<std::string> args);
  ~ProcessCrew() override;

  Result<std::int32_t> Start(Role role, int request_fd, int result_fd) override;
  std::vector<ChildExit> Reap() override;
  bool Kill(std::int32_t id, int signal) override;
  std::size_t running() const override { return children_.size(); }

 private:
  std::filesystem::path downloader_exe_;
  std::filesystem::path worker_exe_;
  std::vector<std::string> args_;
  std::map<pid_t, Role> children_;
};

/// Finds a helper executable (downloader, worker) of the running
/// coordinator: in meson's build tree (../<name>/<name>, when ../build.ninja
/// exists), else installed in libexecdir/thumbmill/, looked up relative to
/// the running executable first (a tree staged with DESTDIR or moved) and
/// then at the configured absolute path. Empty when none exists.
std::filesystem::path find_sibling_executable(const std::string& name);

}  // namespace thumbmill
