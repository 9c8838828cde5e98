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
//   - inherits no descriptor but 0, 1, 2, its two pipe ends (3 and 4) and
//     the run's options (5: a sealed memfd it reads once and closes), so its
//     command line is short and readable in `ps`;
//   - is named after its role: "thumbmill: worker 3" in `ps` and `top -c`,
//     thumbmill-w3 in `top` (workers are numbered 1..N, a replacement takes
//     the number of the one it replaces); thumbmill-dl and thumbmill-up for
//     the downloader and the uploader.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "coordinator/crew.h"
#include "shared/fd_io.h"
#include "shared/process_setup.h"

namespace thumbmill {

class ProcessCrew : public Crew {
 public:
  /// `command` gives every child's arguments and the options it reads.
  ProcessCrew(std::filesystem::path downloader_exe, std::filesystem::path worker_exe,
              std::filesystem::path uploader_exe, ChildCommand command);
  ~ProcessCrew() override;

  Result<std::int32_t> Start(Role role, int request_fd, int result_fd) override;
  std::vector<ChildExit> Reap() override;
  bool Kill(std::int32_t id, int signal) override;
  std::size_t running() const override { return children_.size(); }

 private:
  std::filesystem::path downloader_exe_;
  std::filesystem::path worker_exe_;
  std::filesystem::path uploader_exe_;  // empty without an --out bucket
  struct Member {
    Role role;
    int index;  // workers: 1..N; 0 for the downloader
  };
  /// The sealed memfd of the options JSON, made at the first Start.
  Result<int> OptionsFd();
  /// "downloader", or "worker N" with the lowest N no running worker has.
  std::string TitleFor(Role role, int* index) const;

  ChildCommand command_;
  UniqueFd options_fd_;
  std::map<pid_t, Member> children_;
};

/// Finds a helper executable (downloader, worker, uploader) of the running
/// coordinator: in meson's build tree (../<name>/<name>, when ../build.ninja
/// exists), else installed in libexecdir/thumbmill/, looked up relative to
/// the running executable first (a tree staged with DESTDIR or moved) and
/// then at the configured absolute path. Empty when none exists.
std::filesystem::path find_sibling_executable(const std::string& name);

}  // namespace thumbmill
