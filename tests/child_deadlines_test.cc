// The deadlines for children that are not about one job
// (coordinator/child_deadlines.h), over an injected time: no sleeping.
#include <doctest/doctest.h>

#include "coordinator/child_deadlines.h"

using namespace thumbmill;
using namespace std::chrono_literals;

TEST_CASE("liveness: overdue only after the limit of silence, and a reset starts it again") {
  const auto t0 = SteadyClock::time_point{} + 1h;
  Liveness alive(t0);
  CHECK_FALSE(alive.Overdue(t0 + 2999ms, 3000ms));
  CHECK(alive.Overdue(t0 + 3001ms, 3000ms));
  alive.Reset(t0 + 3001ms);
  CHECK_FALSE(alive.Overdue(t0 + 6000ms, 3000ms));
}

TEST_CASE("end of run: an idle child gets SIGTERM after the grace, then SIGKILL, each once") {
  const auto t0 = SteadyClock::time_point{} + 1h;
  const auto grace = EndOfRunDeadline::kGrace;
  EndOfRunDeadline end;
  CHECK(end.Due(false, t0) == 0);
  CHECK_FALSE(end.signalled());
  CHECK(end.Due(false, t0 + grace - 1ms) == 0);
  CHECK(end.Due(false, t0 + grace) == SIGTERM);
  CHECK(end.signalled());
  CHECK(end.Due(false, t0 + grace + 1ms) == 0);
  CHECK(end.Due(false, t0 + 2 * grace) == SIGKILL);
  CHECK(end.Due(false, t0 + 10 * grace) == 0);
}

TEST_CASE("end of run: a child holding a job is left to its --job-timeout; the grace starts when it is done") {
  const auto t0 = SteadyClock::time_point{} + 1h;
  const auto grace = EndOfRunDeadline::kGrace;
  EndOfRunDeadline end;
  for (int i = 0; i < 10; ++i) CHECK(end.Due(true, t0 + i * grace) == 0);
  const auto done = t0 + 10 * grace;
  CHECK(end.Due(false, done) == 0);
  CHECK(end.Due(false, done + grace - 1ms) == 0);
  CHECK(end.Due(false, done + grace) == SIGTERM);
}
