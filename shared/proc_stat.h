// What /proc/<pid>/stat says about a process (or thread): the one place that
// parses it, for the clean-ups that must tell a live owner from a dead one.
#pragma once

#include <optional>

namespace thumbmill {

struct ProcStat {
  char state = '?';                   // field 3: R, S, D, T, Z (zombie), X (dead), ...
  unsigned long long start_time = 0;  // field 22: clock ticks since boot
};

/// The stat of process or thread `id`; nullopt when there is none.
std::optional<ProcStat> read_proc_stat(long id);

/// Whether `id` is a process or thread that can still act: it exists and is
/// neither a zombie nor dead. A child killed a moment ago may linger as a
/// zombie until it is reaped; it can write nothing more.
bool process_running(long id);

}  // namespace thumbmill
