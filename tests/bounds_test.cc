// Issue 7 §1 and §10, the parts a unit test can reach: the sizes limit where
// options are read, the fixed-size records that cross a process boundary, the
// layout stamp a queue segment carries, and the queue's semaphores (posted
// only for a counted sleeper).
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <vips/vips8>

#include "shared/fd_io.h"
#include "shared/job_queue.h"
#include "shared/options.h"
#include "shared/wire.h"
#include "worker/resize.h"
#include "worker/worker_loop.h"

using namespace thumbmill;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// "1,2,...,n" as a --sizes value.
std::string size_list(int n) {
  std::string list;
  for (int i = 1; i <= n; ++i) list += (i > 1 ? "," : "") + std::to_string(i * 10);
  return list;
}

ParsedCommandLine parse(std::vector<std::string> args) {
  args.insert(args.begin(), "coordinator");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

/// Parse and finalize, as coordinator_main does: the first error, or "".
std::string command_line_error(const std::string& sizes) {
  ParsedCommandLine parsed = parse({"--sizes", sizes, "list.txt"});
  if (!parsed.error.empty()) return parsed.error;
  Status status = finalize_options(parsed.options);
  return status.ok() ? "" : status.message();
}

/// Polls `done` until it holds or 10 s pass (an event, not a sleep).
template <class F>
bool eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

/// Anonymous memory for a queue block, unmapped at the end.
struct Block {
  explicit Block(std::size_t n) : size(n) {
    data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(data != MAP_FAILED);
  }
  ~Block() { ::munmap(data, size); }
  void* data;
  std::size_t size;
};

JobQueue::SlotId publish(JobQueue& q, std::uint64_t id) {
  auto slot = q.Reserve(JobInfo{id, "stem", "", false}, 64, 1);
  REQUIRE(slot);
  q.Publish(*slot, 64, 0);
  return *slot;
}

}  // namespace

// ----- §1: at most kMaxSizes sizes ---------------------------------------------

TEST_CASE("the sizes limit is the number of outputs a ResizeOutcome holds") {
  CHECK(kMaxSizes == 8);
  // sizes x formats outputs, at most 16 (issue 9: several formats in one run).
  CHECK(kMaxOutputs == kMaxOutputsPerSource);
  CHECK(kMaxSizes <= kMaxOutputs);
}

TEST_CASE("--sizes: 8 sizes are accepted, a 9th is refused and the message names the limit") {
  CHECK(command_line_error(size_list(8)) == "");
  const std::string error = command_line_error(size_list(9));
  CHECK(contains(error, "--sizes"));
  CHECK(contains(error, "at most 8"));
  CHECK(contains(command_line_error(size_list(40)), "at most 8"));
  // Repeated in separate flags counts the same.
  ParsedCommandLine parsed = parse({"--sizes", size_list(5), "--sizes", "600,700,800,900", "list.txt"});
  const std::string repeated = parsed.error.empty() ? finalize_options(parsed.options).message() : parsed.error;
  CHECK(contains(repeated, "at most 8"));
}

TEST_CASE("--sizes: a repeated size is not a new output, so 9 entries with one repeat pass") {
  CHECK(command_line_error(size_list(8) + ",10") == "");
}

TEST_CASE("finalize_options refuses 9 sizes built by hand") {
  Options options;
  options.sizes.clear();
  for (int i = 1; i <= 9; ++i) options.sizes.push_back({i * 10, 0});
  Status status = finalize_options(options);
  CHECK_FALSE(status.ok());
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK(contains(status.message(), "at most 8"));
}

TEST_CASE("options_from_json refuses 9 sizes: a child never trusts the count it is handed") {
  Options options;
  nlohmann::json j = nlohmann::json::parse(options_to_json(options));
  j["sizes"] = nlohmann::json::array();
  for (int i = 1; i <= 8; ++i) j["sizes"].push_back(std::to_string(i * 10));
  CHECK(options_from_json(j.dump()).ok());
  j["sizes"].push_back("900");
  Result<Options> nine = options_from_json(j.dump());
  REQUIRE_FALSE(nine.ok());
  CHECK(contains(nine.status().message(), "at most 8"));
}

// ----- §1: fixed arrays are written within bounds -----------------------------

TEST_CASE("copy_text: fits whole, or is cut visibly, NUL-terminated, on a UTF-8 boundary") {
  char small[16];
  CHECK(copy_text(small, "short"));
  CHECK(std::string(small) == "short");
  CHECK(copy_text(small, std::string(15, 'a')));  // exactly fits with its NUL
  CHECK(std::string(small) == std::string(15, 'a'));

  std::memset(small, 'x', sizeof small);
  CHECK_FALSE(copy_text(small, std::string(300, 'b')));
  CHECK(std::strlen(small) == 15);
  CHECK(std::string(small).ends_with("..."));

  // "é" is two bytes: never cut between them (the report is JSON and must be UTF-8).
  std::string accents;
  for (int i = 0; i < 20; ++i) accents += "\xC3\xA9";
  CHECK_FALSE(copy_text(small, accents));
  const std::string cut(small);
  CHECK(cut.ends_with("..."));
  const std::string kept = cut.substr(0, cut.size() - 3);
  CHECK(kept.size() % 2 == 0);
  CHECK(kept == accents.substr(0, kept.size()));
}

TEST_CASE("copy_whole: a name that does not fit is refused, never shortened") {
  char stem[8];
  CHECK(copy_whole(stem, "cat"));
  CHECK(std::string(stem) == "cat");
  std::memset(stem, 'x', sizeof stem);
  CHECK_FALSE(copy_whole(stem, "longer-than-eight"));
  CHECK(stem[0] == '\0');  // nothing half-written is left to be used
}

TEST_CASE("text_of never reads past an array a sender left without a NUL") {
  char error[kMaxErrorText];
  std::memset(error, 'z', sizeof error);
  CHECK(text_of(error).size() == kMaxErrorText);
  error[3] = '\0';
  CHECK(text_of(error) == "zzz");
}

TEST_CASE("a FetchRequest from the pipe is checked before use") {
  FetchRequest req;
  CHECK(copy_whole(req.stem, "cat"));
  std::memcpy(req.url, "http://x/", 9);
  req.url_length = 9;
  CHECK(well_formed(req));
  SUBCASE("url_length beyond the array") {
    req.url_length = sizeof req.url + 100;
    CHECK_FALSE(well_formed(req));
  }
  SUBCASE("url not terminated at url_length") {
    req.url_length = 4;
    CHECK_FALSE(well_formed(req));
  }
  SUBCASE("stem without a NUL") {
    std::memset(req.stem, 'a', sizeof req.stem);
    CHECK_FALSE(well_formed(req));
  }
}

TEST_CASE("ResizeOutcome and FetchOutcome from the pipe are checked before use") {
  ResizeOutcome r;
  CHECK(well_formed(r));
  r.output_count = kMaxOutputs;
  CHECK(well_formed(r));
  r.output_count = kMaxOutputs + 1;
  CHECK_FALSE(well_formed(r));
  r.output_count = 0;
  std::memset(r.error, 'e', sizeof r.error);
  CHECK_FALSE(well_formed(r));

  FetchOutcome f;
  CHECK(well_formed(f));
  std::memset(f.error, 'e', sizeof f.error);
  CHECK_FALSE(well_formed(f));
}

TEST_CASE("a frame header announcing more than a record can hold marks the stream corrupt") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const FrameHeader bogus{MessageType::kResizeOutcome, 1u << 30};
  REQUIRE(::write(fds[1], &bogus, sizeof bogus) == static_cast<ssize_t>(sizeof bogus));
  ::close(fds[1]);
  FrameReader reader;
  reader.Fill(fds[0]);  // the header alone, then EOF
  CHECK_FALSE(reader.Next());
  CHECK(reader.corrupt());
  ::close(fds[0]);
}

// ----- §1: the layout stamp ---------------------------------------------------

TEST_CASE("a queue carries its layout sizes and Attach refuses a block laid out differently") {
  const std::size_t size = JobQueue::RequiredBytes(4, 64 * 1024);
  Block block(size);
  JobQueue created = JobQueue::Create(block.data, size, 4, 64 * 1024, Placement::kPrivate);
  CHECK(created.slot_count() == 4);
  auto* stamp = static_cast<QueueStamp*>(block.data);
  CHECK(stamp->slot_bytes == sizeof(JobSlot));
  CHECK(stamp->header_bytes >= sizeof(QueueStamp));
  REQUIRE(JobQueue::Attach(block.data, size).ok());

  SUBCASE("a build with a larger slot record") {
    stamp->slot_bytes += 8;
    Result<JobQueue> attached = JobQueue::Attach(block.data, size);
    REQUIRE_FALSE(attached.ok());
    CHECK(contains(attached.status().message(), "layout"));
  }
  SUBCASE("a build with a different header") {
    stamp->header_bytes -= 8;
    Result<JobQueue> attached = JobQueue::Attach(block.data, size);
    REQUIRE_FALSE(attached.ok());
    CHECK(contains(attached.status().message(), "layout"));
  }
}

// ----- §10: semaphores posted only for a counted sleeper ---------------------------

TEST_CASE("10,000 publishes and releases with no one waiting leave no wake-ups behind") {
  HeapQueueMemory mem(8, 1 << 20);
  JobQueue& q = mem.queue();
  for (std::uint64_t id = 1; id <= 10'000; ++id) {
    publish(q, id);
    JobQueue::SlotId slot;
    REQUIRE(q.Take(2, 0ms, &slot) == TakeResult::kJob);
    q.Release(slot);
  }
  const QueueWakeups w = q.wakeups();
  CHECK(w.items_pending == 0);
  CHECK(w.space_pending == 0);
  CHECK(w.items_waiters == 0);
  CHECK(w.space_waiters == 0);
}

TEST_CASE("a counted sleeper in Take is woken by Publish, and the token is used up") {
  HeapQueueMemory mem(4, 1 << 20);
  JobQueue& q = mem.queue();
  TakeResult result = TakeResult::kTimeout;
  std::thread consumer([&] {
    JobQueue::SlotId slot;
    result = q.Take(2, 60s, &slot);
  });
  REQUIRE(eventually([&] { return q.wakeups().items_waiters == 1; }));
  publish(q, 1);
  consumer.join();  // returns on the wake-up, not after 60 s
  CHECK(result == TakeResult::kJob);
  const QueueWakeups w = q.wakeups();
  CHECK(w.items_pending == 0);
  CHECK(w.items_waiters == 0);
}

TEST_CASE("Close wakes every counted sleeper and leaves no tokens for nobody") {
  HeapQueueMemory mem(4, 1 << 20);
  JobQueue& q = mem.queue();
  std::vector<std::thread> consumers;
  std::atomic<int> closed{0};
  for (int i = 0; i < 3; ++i)
    consumers.emplace_back([&] {
      JobQueue::SlotId slot;
      if (q.Take(2, 60s, &slot) == TakeResult::kClosed) ++closed;
    });
  REQUIRE(eventually([&] { return q.wakeups().items_waiters == 3; }));
  q.Close();
  for (auto& t : consumers) t.join();
  CHECK(closed == 3);
  CHECK(q.wakeups().items_pending == 0);
}

TEST_CASE("a producer waiting for space is woken by a release, and only then") {
  HeapQueueMemory mem(1, 64 * 1024);
  JobQueue& q = mem.queue();
  publish(q, 1);
  REQUIRE_FALSE(q.Reserve(JobInfo{2, "stem", "", false}, 64, 1));  // no slot
  std::thread producer([&] { q.WaitForSpace(60s); });
  REQUIRE(eventually([&] { return q.wakeups().space_waiters == 1; }));
  JobQueue::SlotId slot;
  REQUIRE(q.Take(2, 0ms, &slot) == TakeResult::kJob);
  q.Release(slot);
  producer.join();
  CHECK(q.wakeups().space_pending == 0);
  CHECK(q.Reserve(JobInfo{2, "stem", "", false}, 64, 1));
}

// ----- §1: the worker never writes past ResizeOutcome::outputs -------------------

TEST_CASE("a worker handed more sizes than a ResizeOutcome holds fails the job and leaves no files") {
  REQUIRE(init_vips("bounds_test", /*allow_untrusted_formats=*/false).ok());
  // An image in memory, as the downloader leaves it in the arena.
  VipsBlob* blob = vips::VImage::black(64, 48).jpegsave_buffer();
  std::size_t length = 0;
  const auto* bytes = static_cast<const std::byte*>(vips_blob_get(blob, &length));

  char dir_template[] = "/tmp/tmtest-bounds-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::filesystem::path out_dir = dir_template;
  Options options;  // built by hand, as a child would get it from a broken parent: not finalized
  options.out_dir = out_dir;
  options.sizes.clear();
  for (int i = 1; i <= static_cast<int>(kMaxOutputs) + 1; ++i) options.sizes.push_back({i * 4, 0});

  HeapQueueMemory mem(4, 1 << 20);
  JobQueue& q = mem.queue();
  auto slot = q.Reserve(JobInfo{1, "photo", "", false}, length, 1);
  REQUIRE(slot);
  std::memcpy(q.body(*slot).data(), bytes, length);
  q.Publish(*slot, length, 0);
  vips_area_unref(VIPS_AREA(blob));
  JobQueue::SlotId taken;
  REQUIRE(q.Take(2, 0ms, &taken) == TakeResult::kJob);

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(handle_job(q, taken, options, fds[1]));
  ::close(fds[1]);
  FrameReader reader;
  reader.Fill(fds[0]);
  ::close(fds[0]);
  auto frame = reader.Next();
  REQUIRE(frame);
  const auto outcome = frame->as<ResizeOutcome>();
  CHECK(outcome.output_count <= kMaxOutputs);
  CHECK(static_cast<Code>(outcome.code) != Code::kOk);
  CHECK(well_formed(outcome));
  CHECK(std::filesystem::is_empty(out_dir));  // no thumbnail of a "failed" source stays
  std::filesystem::remove_all(out_dir);
}
