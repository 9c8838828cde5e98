// The worker's result carries what the job's fetch did (issue 7 §9): the
// facts the downloader published with the job reach the coordinator in the
// same ResizeOutcome as the thumbnails, so a report entry never depends on
// which of two pipes was read first. Written for the worker loop alone:
// handle_job on a job published by hand, its outcome read from a pipe.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>
#include <vips/vips8>

#include "shared/fd_io.h"
#include "shared/job_queue.h"
#include "shared/wire.h"
#include "worker/resize.h"
#include "worker/worker_loop.h"

namespace thumbmill {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "thumbmill-worker-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("a worker's outcome carries the fetch facts published with its job, and its resize time") {
  REQUIRE(init_vips("worker_outcome_test", false).ok());
  TempDir dir;
  const fs::path image = dir.path / "source.png";
  vips::VImage::black(120, 80).write_to_file(image.c_str());
  Options options;
  options.out_dir = dir.path / "out";
  options.sizes = {{64, 0}};
  fs::create_directories(options.out_dir);

  HeapQueueMemory memory(4, 1 << 20);
  JobQueue& queue = memory.queue();
  auto slot = queue.Reserve(JobInfo{7, "source", image.string(), false}, 0, 1);
  REQUIRE(slot);
  FetchFacts facts;
  facts.bytes = fs::file_size(image);
  facts.tries = 3;
  facts.http_status = 200;
  facts.fetch_ms = 1234;
  (void)copy_whole(facts.etag, "\"v7\"");
  (void)copy_whole(facts.last_modified, "Mon, 30 Nov 2026 10:00:26 GMT");
  queue.Publish(*slot, facts.bytes, facts);
  JobQueue::SlotId taken;
  REQUIRE(queue.Take(2, std::chrono::milliseconds(0), &taken) == TakeResult::kJob);

  auto pipe = make_pipe();
  REQUIRE(pipe.ok());
  REQUIRE(handle_job(queue, taken, options, pipe->write_fd));
  close_fd(pipe->write_fd);
  FrameReader reader;
  (void)reader.Fill(pipe->read_fd);
  auto frame = reader.Next();
  REQUIRE(frame);
  REQUIRE(frame->type == MessageType::kResizeOutcome);
  const ResizeOutcome o = frame->as<ResizeOutcome>();
  close_fd(pipe->read_fd);

  CHECK(o.source_id == 7);
  CHECK(static_cast<Code>(o.code) == Code::kOk);
  CHECK(o.output_count == 1);
  CHECK(o.fetch.tries == 3);
  CHECK(o.fetch.http_status == 200);
  CHECK(o.fetch.bytes == facts.bytes);
  CHECK(o.fetch.fetch_ms == 1234);
  CHECK(text_of(o.fetch.etag) == "\"v7\"");
  CHECK(text_of(o.fetch.last_modified) == "Mon, 30 Nov 2026 10:00:26 GMT");
  CHECK(fs::exists(options.out_dir / "source_64.jpg"));
  CHECK(queue.Stats().free == 4);  // released after the report
}

}  // namespace thumbmill
