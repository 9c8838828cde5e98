#include "coordinator/redis_batch.h"

#include <openssl/sha.h>

#include <algorithm>

namespace thumbmill {
namespace {

// Each script is one atomic step on the server. KEYS and ARGV as noted.

// Adds sources. KEYS: seen, jobs, stats, results. ARGV: groups of 5:
// digest, kind ("j" a job, "r" a malformed line's result), text or result,
// line, display. Returns how many were new.
const RedisScript kAdd(R"lua(
local added = 0
for i = 1, #ARGV, 5 do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then
    added = added + 1
    redis.call('HINCRBY', KEYS[3], 'enqueued', 1)
    if ARGV[i + 1] == 'j' then
      if ARGV[i + 4] == '' then
        redis.call('XADD', KEYS[2], '*', 's', ARGV[i + 2], 'n', ARGV[i + 3])
      else
        redis.call('XADD', KEYS[2], '*', 's', ARGV[i + 2], 'n', ARGV[i + 3], 'd', ARGV[i + 4])
      end
    else
      redis.call('XADD', KEYS[4], '*', 'job', '', 'node', 'enqueue', 'r', ARGV[i + 2])
      redis.call('HINCRBY', KEYS[3], 'failed', 1)
    end
  end
end
return added
)lua");

// Completes one job. KEYS: jobs, results, stats, dead, ticks. ARGV: group,
// id, result JSON, outcome, node, and for a poison job: text, line,
// deliveries. Returns 1 when this completion is the one recorded. `ticks`
// counts results per 10 s of server time (the last two minutes kept), for
// the rate --status shows.
const RedisScript kComplete(R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'job', ARGV[2], 'node', ARGV[5], 'r', ARGV[3])
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
if ARGV[6] then
  redis.call('XADD', KEYS[4], '*', 'job', ARGV[2], 's', ARGV[6], 'n', ARGV[7], 'deliveries', ARGV[8])
  redis.call('HINCRBY', KEYS[3], 'poison', 1)
end
local t = redis.call('TIME')
local tick = math.floor(tonumber(t[1]) / 10)
redis.call('HSETNX', KEYS[3], 'first_ms', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('HINCRBY', KEYS[5], tick, 1)
redis.call('HDEL', KEYS[5], tick - 12)
return 1
)lua");

// Hands a job back. KEYS: jobs. ARGV: group, id, text, line, display.
const RedisScript kRelease(R"lua(
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
if ARGV[5] == '' then
  redis.call('XADD', KEYS[1], '*', 's', ARGV[3], 'n', ARGV[4])
else
  redis.call('XADD', KEYS[1], '*', 's', ARGV[3], 'n', ARGV[4], 'd', ARGV[5])
end
return 1
)lua");

// Claims idle jobs with their delivery counts. KEYS: jobs. ARGV: group,
// consumer, min-idle ms, cursor, count. Returns {cursor, {{id, fields,
// deliveries}, ...}}. Redis 7.0 lists entries deleted while pending in a
// third array (never the case here: nothing pending is trimmed); 6.2 gives
// nil in their place, skipped.
const RedisScript kClaimIdle(R"lua(
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if type(e) == 'table' then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    out[#out + 1] = {e[1], e[2], n}
  end
end
return {r[1], out}
)lua");

// Takes over every job pending for a dead consumer. KEYS: jobs. ARGV: group,
// consumer, dead, count. Returns {{id, fields, deliveries}, ...}; deletes
// the dead consumer once nothing is pending for it.
const RedisScript kClaimFrom(R"lua(
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[3])
local out = {}
for _, e in ipairs(p) do
  local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, e[1])
  if got[1] and type(got[1]) == 'table' then out[#out + 1] = {got[1][1], got[1][2], e[4] + 1} end
end
local left = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[3])
if #left == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[3]) end
return out
)lua");

// Resets the idle time of jobs still this consumer's. KEYS: jobs. ARGV:
// group, consumer, ids... Returns how many are no longer its.
const RedisScript kTouch(R"lua(
local lost = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost = lost + 1
  end
end
return lost
)lua");

// KEYS: nodes, beats. ARGV: node, json. Returns the server time in ms.
const RedisScript kHeartbeat(R"lua(
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ms, ARGV[1])
return ms
)lua");

// KEYS: enqueuers. ARGV: name, ttl ms (0 gives the lease up). Returns 0
// (pipelined among adds, whose replies are summed).
const RedisScript kLease(R"lua(
if tonumber(ARGV[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
return 0
)lua");

// Lua both kCounts and kTrim begin with: the last id the group ARGV[1] of
// stream KEYS[1] delivered, in `delivered` (nil without such a stream or group).
// XINFO answers flat [name, value, ...] arrays.
constexpr std::string_view kLastDelivered = R"lua(
local delivered = nil
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, id = nil, nil
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then id = g[i + 1] end
    end
    if name == ARGV[1] then delivered = id end
  end
end
)lua";

// The batch's state in one step. KEYS: jobs, stats, enqueuers. ARGV: group.
// Returns {exists, pending, unread, enqueuers, server ms, stats...}.
const RedisScript kCounts(std::string(kLastDelivered) + R"lua(
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local enq = redis.call('ZCOUNT', KEYS[3], ms, '+inf')
local stats = redis.call('HGETALL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, 0, enq, ms, stats} end
local last = nil
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do if info[i] == 'last-generated-id' then last = info[i + 1] end end
if delivered == nil then return {0, 0, 0, enq, ms, stats} end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])[1]
local unread = 0
if last ~= delivered then unread = 1 end
return {1, pending, unread, enq, ms, stats}
)lua");

// Trims acknowledged entries below the oldest one still pending or unread.
// KEYS: jobs. ARGV: group.
const RedisScript kTrim(std::string(kLastDelivered) + R"lua(
if delivered == nil or delivered == '0-0' then return 0 end
local p = redis.call('XPENDING', KEYS[1], ARGV[1])
local keep = delivered
if p[1] > 0 then keep = p[2] end
return redis.call('XTRIM', KEYS[1], 'MINID', keep)
)lua");

// Deletes a consumer with nothing pending. KEYS: jobs. ARGV: group, consumer.
const RedisScript kRetire(R"lua(
local left = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #left == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) end
return -1
)lua");

/// A job from a stream entry: {id, [field, value, ...]}, with `deliveries`.
std::optional<BatchJob> job_of(ReplyView entry, long long deliveries = 1) {
  if (!entry.is_array() || entry.size() < 2 || !entry[1].is_array()) return std::nullopt;
  BatchJob job;
  job.id = std::string(entry[0].str());
  job.text = std::string(entry[1].field("s").str());
  job.line = static_cast<std::uint64_t>(entry[1].field("n").integer());
  job.display = std::string(entry[1].field("d").str());
  job.deliveries = deliveries;
  return job;
}

/// {{id, fields, deliveries}, ...} from the claim scripts.
std::vector<BatchJob> claimed_jobs(ReplyView list) {
  std::vector<BatchJob> jobs;
  for (std::size_t i = 0; i < list.size(); ++i)
    if (auto job = job_of(list[i], list[i][2].integer())) jobs.push_back(std::move(*job));
  return jobs;
}

}  // namespace

BatchKeys::BatchKeys(const std::string& batch) {
  const std::string p = "thumbmill:{" + batch + "}:";
  jobs = p + "jobs";
  results = p + "results";
  dead = p + "dead";
  seen = p + "seen";
  stats = p + "stats";
  nodes = p + "nodes";
  beats = p + "beats";
  enqueuers = p + "enqueuers";
  meta = p + "meta";
  ticks = p + "ticks";
}

long long BatchCounts::waiting() const { return std::max(0LL, enqueued - done() - pending); }

std::string source_digest(std::string_view location) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  ::SHA256(reinterpret_cast<const unsigned char*>(location.data()), location.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), 16);
}

Result<BatchStore> BatchStore::Connect(const RedisAddress& address) {
  auto conn = RedisConnection::Connect(address, kRedisTimeout);
  if (!conn.ok()) return conn.status();
  return BatchStore(address, std::move(*conn));
}

Status BatchStore::Reconnect() {
  auto conn = RedisConnection::Connect(address_, kRedisTimeout);
  if (!conn.ok()) return conn.status();
  conn_ = std::move(*conn);
  return Status::Ok();
}

Status BatchStore::EnsureGroup() {
  auto r = conn_.Command({"XGROUP", "CREATE", keys_.jobs, BatchKeys::kGroup, "0", "MKSTREAM"});
  if (!r.ok() && r.status().message().find("BUSYGROUP") == std::string::npos) return r.status();
  return Status::Ok();
}

Result<std::string> BatchStore::AgreeOnOutput(const std::string& mine) {
  auto set = conn_.Command({"HSETNX", keys_.meta, "output", mine});
  if (!set.ok()) return set.status();
  if (set->integer() == 1) return mine;
  auto first = conn_.Command({"HGET", keys_.meta, "output"});
  if (!first.ok()) return first.status();
  return std::string(first->str());
}

void BatchStore::AppendAdd(const std::vector<Entry>& entries) {
  std::vector<std::string> args;
  args.reserve(entries.size() * 5);
  for (const Entry& e : entries) {
    args.push_back(e.digest);
    const bool job = e.failed_json.empty();
    args.push_back(job ? "j" : "r");
    args.push_back(job ? e.job.text : e.failed_json);
    args.push_back(std::to_string(e.job.line));
    args.push_back(e.job.display);
  }
  conn_.AppendEval(kAdd, {keys_.seen, keys_.jobs, keys_.stats, keys_.results}, args);
}

void BatchStore::AppendLease(const std::string& enqueuer, std::chrono::milliseconds ttl) {
  conn_.AppendEval(kLease, {keys_.enqueuers}, {enqueuer, std::to_string(ttl.count())});
}

Result<long long> BatchStore::CollectReplies(std::size_t calls) {
  long long added = 0;
  Status first;
  for (std::size_t i = 0; i < calls; ++i) {
    auto r = conn_.GetReply();
    if (!r.ok()) {
      if (first.ok()) first = r.status();
      if (conn_.broken()) break;
      continue;
    }
    added += r->integer();
  }
  if (!first.ok()) return first;
  return added;
}

Result<std::vector<BatchJob>> BatchStore::ReadNew(const std::string& consumer, std::size_t count,
                                                  std::chrono::milliseconds block) {
  std::vector<std::string> args{"XREADGROUP", "GROUP", BatchKeys::kGroup, consumer, "COUNT", std::to_string(count)};
  if (block.count() > 0) {  // BLOCK 0 would wait for ever
    args.push_back("BLOCK");
    args.push_back(std::to_string(block.count()));
  }
  args.insert(args.end(), {"STREAMS", keys_.jobs, ">"});
  conn_.SetTimeout(kRedisTimeout + block);
  auto r = conn_.Command(args);
  conn_.SetTimeout(kRedisTimeout);
  if (!r.ok()) return r.status();
  std::vector<BatchJob> jobs;
  // [[stream, [entry, ...]]], or nil when the block timed out.
  const ReplyView entries = (*r)[0][1];
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (auto job = job_of(entries[i])) jobs.push_back(std::move(*job));
  return jobs;
}

Result<std::vector<BatchJob>> BatchStore::ReadOwn(const std::string& consumer, std::size_t count,
                                                  const std::string& after) {
  auto r = conn_.Command({"XREADGROUP", "GROUP", BatchKeys::kGroup, consumer, "COUNT", std::to_string(count),
                          "STREAMS", keys_.jobs, after});
  if (!r.ok()) return r.status();
  std::vector<BatchJob> jobs;
  const ReplyView entries = (*r)[0][1];
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (auto job = job_of(entries[i])) jobs.push_back(std::move(*job));  // nil fields: deleted, skipped
  return jobs;
}

Result<std::vector<BatchJob>> BatchStore::ClaimIdle(const std::string& consumer, std::chrono::milliseconds min_idle,
                                                    std::size_t count, std::string& cursor) {
  auto r = conn_.Eval(kClaimIdle, {keys_.jobs},
                      {BatchKeys::kGroup, consumer, std::to_string(min_idle.count()), cursor, std::to_string(count)});
  if (!r.ok()) return r.status();
  cursor = std::string((*r)[0].str());
  if (cursor.empty()) cursor = "0-0";
  return claimed_jobs((*r)[1]);
}

Result<std::vector<BatchJob>> BatchStore::ClaimFrom(const std::string& consumer, const std::string& dead,
                                                    std::size_t count) {
  auto r = conn_.Eval(kClaimFrom, {keys_.jobs}, {BatchKeys::kGroup, consumer, dead, std::to_string(count)});
  if (!r.ok()) return r.status();
  return claimed_jobs(r->view());
}

Result<long long> BatchStore::Touch(const std::string& consumer, const std::vector<std::string>& ids) {
  std::vector<std::string> args{BatchKeys::kGroup, consumer};
  args.insert(args.end(), ids.begin(), ids.end());
  auto r = conn_.Eval(kTouch, {keys_.jobs}, args);
  if (!r.ok()) return r.status();
  return r->integer();
}

Result<std::vector<bool>> BatchStore::Complete(const std::string& node, const std::vector<Completion>& completions) {
  if (Status st = conn_.Load(kComplete); !st.ok()) return st;
  for (const Completion& c : completions) {
    std::vector<std::string> args{BatchKeys::kGroup, c.id, c.json, c.outcome, node};
    if (c.poison) {
      args.push_back(c.job.text);
      args.push_back(std::to_string(c.job.line));
      args.push_back(std::to_string(c.job.deliveries));
    }
    conn_.AppendEval(kComplete, {keys_.jobs, keys_.results, keys_.stats, keys_.dead, keys_.ticks}, args);
  }
  std::vector<bool> recorded;
  for (std::size_t i = 0; i < completions.size(); ++i) {
    auto r = conn_.GetReply();
    if (!r.ok()) return r.status();
    recorded.push_back(r->integer() == 1);
  }
  return recorded;
}

Status BatchStore::Release(const std::vector<BatchJob>& jobs) {
  if (Status st = conn_.Load(kRelease); !st.ok()) return st;
  for (const BatchJob& j : jobs)
    conn_.AppendEval(kRelease, {keys_.jobs}, {BatchKeys::kGroup, j.id, j.text, std::to_string(j.line), j.display});
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (auto r = conn_.GetReply(); !r.ok()) return r.status();
  return Status::Ok();
}

Result<long long> BatchStore::Heartbeat(const std::string& node, const std::string& json) {
  auto r = conn_.Eval(kHeartbeat, {keys_.nodes, keys_.beats}, {node, json});
  if (!r.ok()) return r.status();
  return r->integer();
}

Status BatchStore::Retire(const std::string& consumer) {
  return conn_.Eval(kRetire, {keys_.jobs}, {BatchKeys::kGroup, consumer}).status();
}

Status BatchStore::Trim() { return conn_.Eval(kTrim, {keys_.jobs}, {BatchKeys::kGroup}).status(); }

Result<BatchCounts> BatchStore::Counts() {
  auto r = conn_.Eval(kCounts, {keys_.jobs, keys_.stats, keys_.enqueuers}, {BatchKeys::kGroup});
  if (!r.ok()) return r.status();
  BatchCounts c;
  c.exists = (*r)[0].integer() == 1;
  c.pending = (*r)[1].integer();
  c.unread = (*r)[2].integer() == 1;
  c.enqueuers = (*r)[3].integer();
  c.server_ms = (*r)[4].integer();
  const ReplyView stats = (*r)[5];
  c.enqueued = stats.field("enqueued").integer();
  c.ok = stats.field("ok").integer();
  c.failed = stats.field("failed").integer();
  c.skipped = stats.field("skipped").integer();
  c.poison = stats.field("poison").integer();
  c.first_result_ms = stats.field("first_ms").integer();
  return c;
}

Result<bool> BatchStore::Drained() {
  auto c = Counts();
  if (!c.ok()) return c.status();
  return c->exists && c->pending == 0 && !c->unread && c->enqueuers == 0;
}

Result<std::vector<BatchStore::NodeBeat>> BatchStore::Nodes(long long min_ms, long long max_ms) {
  auto beats = conn_.Command({"ZREVRANGEBYSCORE", keys_.beats, max_ms < 0 ? "+inf" : std::to_string(max_ms),
                              std::to_string(min_ms), "WITHSCORES"});
  if (!beats.ok()) return beats.status();
  std::vector<NodeBeat> nodes;
  for (std::size_t i = 0; i + 1 < beats->size(); i += 2)
    nodes.push_back({std::string((*beats)[i].str()), "", (*beats)[i + 1].integer()});
  for (const NodeBeat& n : nodes) conn_.Append({"HGET", keys_.nodes, n.name});
  for (NodeBeat& n : nodes) {
    auto r = conn_.GetReply();
    if (!r.ok()) return r.status();
    n.json = std::string(r->str());
  }
  return nodes;
}

Result<std::vector<std::pair<std::string, long long>>> BatchStore::PendingByConsumer() {
  auto r = conn_.Command({"XPENDING", keys_.jobs, BatchKeys::kGroup});
  if (!r.ok()) return r.status();
  std::vector<std::pair<std::string, long long>> out;
  const ReplyView consumers = (*r)[3];
  for (std::size_t i = 0; i < consumers.size(); ++i)
    out.emplace_back(std::string(consumers[i][0].str()), consumers[i][1].integer());
  return out;
}

Result<double> BatchStore::RecentRate(long long now_ms, long long first_ms) {
  auto r = conn_.Command({"HGETALL", keys_.ticks});
  if (!r.ok()) return r.status();
  // The six whole 10-second ticks before the current one, and the current.
  const long long now_tick = now_ms / 10000;
  long long done = 0;
  for (std::size_t i = 0; i + 1 < r->size(); i += 2) {
    const long long tick = (*r)[i].integer();
    if (tick >= now_tick - 6 && tick <= now_tick) done += (*r)[i + 1].integer();
  }
  // Over those 60-70 s, or since the first result when that is more recent.
  double span = 60.0 + static_cast<double>(now_ms % 10000) / 1000.0;
  if (first_ms > 0) span = std::min(span, std::max(1.0, static_cast<double>(now_ms - first_ms) / 1000.0));
  return done / span;
}

Status BatchStore::ForEachResult(const std::function<Status(std::string_view)>& each, std::size_t page) {
  std::string from = "-";
  for (;;) {
    auto r = conn_.Command({"XRANGE", keys_.results, from, "+", "COUNT", std::to_string(page)});
    if (!r.ok()) return r.status();
    if (r->size() == 0) return Status::Ok();
    for (std::size_t i = 0; i < r->size(); ++i)
      if (Status st = each((*r)[i][1].field("r").str()); !st.ok()) return st;
    from = "(" + std::string((*r)[r->size() - 1][0].str());
    if (r->size() < page) return Status::Ok();
  }
}

}  // namespace thumbmill
