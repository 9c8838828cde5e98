// Skipping a test that cannot run its check, so it is counted as skipped and
// never as passed.
//
// doctest has no run-time skip: a test case that returns early counts as
// passed. THUMBMILL_SKIP prints one line "SKIPPED: <reason>" on standard
// output and returns from the test case; scripts/count-tests moves every
// such test case from "passed" to "skipped" in its closing line.
// REQUIRES: used at most once per test case, in its body (not a helper).
#pragma once

#include <cstdio>
#include <string>

namespace thumbmill::testing {

inline void report_skip(const std::string& reason) {
  std::printf("SKIPPED: %s\n", reason.c_str());
  std::fflush(stdout);
}

}  // namespace thumbmill::testing

#define THUMBMILL_SKIP(reason)                      \
  do {                                              \
    ::thumbmill::testing::report_skip(reason);      \
    return;                                         \
  } while (0)
