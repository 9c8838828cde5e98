#include "shared/proc_stat.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace thumbmill {

std::optional<ProcStat> read_proc_stat(long id) {
  if (id <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(id) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces and ')'; fields resume after
  // the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return std::nullopt;
  std::istringstream rest(stat.substr(close + 2));
  ProcStat out;
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 3) out.state = field[0];
    if (i == 22) out.start_time = std::strtoull(field.c_str(), nullptr, 10);
  }
  return out;
}

bool process_running(long id) {
  const auto stat = read_proc_stat(id);
  return stat && stat->state != 'Z' && stat->state != 'X';
}

}  // namespace thumbmill
