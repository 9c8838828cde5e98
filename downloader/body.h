// Body: where one try's bytes go. It lives in an arena extent of the job
// queue while it fits (reserved at the first bytes: Content-Length bytes
// when known, else a guess that grows by doubling); when the body is larger
// than the arena, cannot grow, or the caller allows it after a long pause,
// it is spilled to a file in the run's temp dir and the job travels as a
// path. Publish hands the finished body to the workers; whatever a Body
// still holds when discarded (slot, spill file) is given back.
//
// A local source (kFile) is a Body too: published as its own path, never
// copied or removed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "downloader/fetch_context.h"
#include "shared/fetch_facts.h"
#include "shared/job_queue.h"
#include "shared/status.h"

namespace thumbmill::fetch {

class Body {
 public:
  enum class Put { kStored, kNoRoom, kFailed };

  /// `stem` and `source` are referenced, not copied: they must outlive the Body.
  Body(const Context& ctx, std::uint64_t source_id, const std::string& stem, const std::string& source)
      : ctx_(ctx), source_id_(source_id), stem_(stem), source_(source) {}
  ~Body() { Discard(); }
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  /// Starts a new try; a spill, if one is needed, goes to `spill_path`.
  void Reset(std::string spill_path) {
    Discard();
    spill_path_ = std::move(spill_path);
  }

  /// A local source: published as its own path, never copied or removed.
  void SetLocalFile(const std::string& path, std::uint64_t size) {
    local_path_ = path;
    length_ = size;
  }

  /// Appends `data`. kNoRoom: no slot or arena room now, nothing stored
  /// (unless `may_spill`: then it goes to the spill file). `expected` is the
  /// Content-Length, or -1. kFailed: see error().
  Put Append(std::string_view data, std::int64_t expected, bool may_spill);

  /// Hands the finished body to the workers. False: no free slot now; call
  /// again later. After true the job owns the slot and any spill file.
  bool Publish(const FetchFacts& facts);

  /// Gives the slot back and removes the spill file.
  void Discard();

  bool has_slot() const { return slot_.has_value(); }
  std::uint64_t length() const { return length_; }
  const Status& error() const { return error_; }

 private:
  JobInfo info(std::string_view path, bool is_temp) const {
    return JobInfo{source_id_, stem_, path, is_temp, source_};
  }
  Put AppendToArena(std::string_view data, std::int64_t expected, bool may_spill);
  bool GrowFor(std::uint64_t needed);
  Put SpillAndAppend(std::string_view data);
  Put AppendToFile(std::string_view data);
  bool WriteAll(const void* data, std::size_t size);
  /// Sets error() to "temp dir path too long" and returns kFailed.
  Put PathTooLong();

  const Context& ctx_;
  std::uint64_t source_id_;
  const std::string& stem_;
  const std::string& source_;
  std::optional<JobQueue::SlotId> slot_;
  std::uint64_t capacity_ = 0;  // of our extent; 0 once spilled
  std::uint64_t length_ = 0;
  int fd_ = -1;
  std::string spill_path_;
  bool spilled_ = false;  // a file of ours exists at spill_path_
  std::string local_path_;
  Status error_;
};

}  // namespace thumbmill::fetch
