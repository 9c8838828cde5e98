#include "coordinator/thread_crew.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <future>

#include <vips/vips.h>

#include "coordinator/sequential_loop.h"
#include "shared/queue_layout.h"
#include "downloader/downloader_loop.h"
#include "uploader/uploader_loop.h"
#include "worker/resize.h"
#include "worker/worker_loop.h"

namespace thumbmill {

struct ThreadCrew::Member {
  Role role = Role::kWorker;
  std::thread thread;
  std::atomic<bool> done{false};
  int exit_code = 0;
  ChildUsage usage;
};

ThreadCrew::ThreadCrew(JobQueue& queue, JobQueue* uploads, const Options& options, std::string temp_dir,
                       bool sequential)
    : queue_(queue), options_(options), temp_dir_(std::move(temp_dir)), sequential_(sequential) {
  if (uploads) uploads_ = *uploads;
}

ThreadCrew::~ThreadCrew() {
  for (auto& [id, m] : members_)
    if (m->thread.joinable()) m->thread.join();
}

void ThreadCrew::Body(Member& m, int request_fd, int result_fd) {
  const auto me = static_cast<std::int32_t>(::gettid());
  JobQueue* uploads = uploads_ ? &*uploads_ : nullptr;
  if (m.role == Role::kWorker)
    m.exit_code = run_worker(queue_, options_, result_fd, me, uploads);
  else if (m.role == Role::kUploader)
    m.exit_code = run_uploader(*uploads_, options_, result_fd, me);
  else if (sequential_)
    m.exit_code = run_sequential(queue_, uploads, options_, temp_dir_, request_fd, result_fd);
  else
    m.exit_code = run_downloader(queue_, options_, temp_dir_, request_fd, result_fd);
  if (m.role == Role::kWorker || sequential_) vips_thread_shutdown();  // libvips' per-thread state

  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  m.usage = {ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
             ru.ru_maxrss};  // maxrss is the whole process's: threads share it
  if (request_fd >= 0) ::close(request_fd);
  m.done.store(true, std::memory_order_release);
  ::close(result_fd);  // last: the coordinator's poll wakes on this EOF and reaps
}

Result<std::int32_t> ThreadCrew::Start(Role role, int request_fd, int result_fd) {
  auto member = std::make_unique<Member>();
  member->role = role;
  std::promise<std::int32_t> tid;
  auto started = tid.get_future();
  Member& m = *member;
  m.thread = std::thread([this, &m, request_fd, result_fd, tid = std::move(tid)]() mutable {
    ::pthread_setname_np(::pthread_self(), std::string(role_name(m.role)).c_str());
    tid.set_value(static_cast<std::int32_t>(::gettid()));
    Body(m, request_fd, result_fd);
  });
  const std::int32_t id = started.get();
  members_.emplace(id, std::move(member));
  return id;
}

std::vector<ChildExit> ThreadCrew::Reap() {
  std::vector<ChildExit> exits;
  for (auto it = members_.begin(); it != members_.end();) {
    Member& m = *it->second;
    if (!m.done.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    m.thread.join();
    ChildExit e;
    e.id = it->first;
    e.role = m.role;
    e.exit_code = m.exit_code;
    e.usage = m.usage;
    exits.push_back(e);
    it = members_.erase(it);
  }
  return exits;
}

Result<Pipeline> make_thread_pipeline(const Options& options) {
  if (Status vips = init_vips("coordinator-threaded", options.allow_untrusted_formats); !vips.ok()) return vips;
  Pipeline p;
  auto temp = create_run_temp_dir(default_temp_root());
  if (!temp.ok()) return temp.status();
  p.temp_dir = TempDir(*temp);
  const QueueLayout layout = queue_layout(options);
  auto heap = HeapQueueMemory::Create(layout.fetch_slots, layout.fetch_arena);
  if (!heap.ok()) return heap.status();
  p.heap = std::move(heap.value());
  p.queue = p.heap->queue();
  if (layout.has_upload()) {
    auto upload = HeapQueueMemory::Create(layout.upload_slots, layout.upload_arena);
    if (!upload.ok()) return upload.status();
    p.upload_heap = std::move(upload.value());
    p.upload_queue = p.upload_heap->queue();
  }
  const bool sequential = options.workers == 0;
  p.crew = std::make_unique<ThreadCrew>(*p.queue, p.upload_queue ? &*p.upload_queue : nullptr, options,
                                        p.temp_dir.path().string(), sequential);
  p.workers = options.workers;
  return p;
}

}  // namespace thumbmill
