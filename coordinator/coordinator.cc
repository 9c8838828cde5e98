// coordinator_main: the start-up checks, in the order a user meets them
// (command line, option values, S3 settings, the inputs and the source buckets,
// the report path, the output directory or bucket), the clean-up of what earlier runs left behind, the pipeline,
// and only then the report (an earlier one is replaced only by a run that
// starts), the loop (run_loop.h) and the exit code.
#include "coordinator/coordinator.h"

#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <system_error>

#include "coordinator/batch_commands.h"
#include "coordinator/inputs.h"
#include "coordinator/report.h"
#include "coordinator/run_loop.h"
#include "coordinator/s3_output_index.h"
#include "shared/s3_client.h"
#include "shared/manifest.h"
#include "shared/output_files.h"
#include "shared/output_plan.h"
#include "shared/shm_segment.h"

namespace thumbmill {
namespace {

/// The --out bucket checked (it exists, these credentials may use it) and
/// what its prefix holds from earlier runs.
Result<S3OutputIndex> open_s3_output(const Options& options) {
  const OutputPlan plan(options);
  S3Client client(options.s3, options.connect_timeout_s + 30);
  if (Status st = client.CheckBucket(plan.bucket()); !st.ok()) return st;
  return S3OutputIndex::Load(client, plan);
}

}  // namespace

int coordinator_main(int argc, char** argv, const PipelineMaker& make_pipeline) {
  ParsedCommandLine cmd = parse_command_line(argc, argv);
  if (cmd.exit_now) return cmd.exit_code;
  if (!cmd.error.empty()) {
    std::fprintf(stderr, "thumbmill: %s\nRun with --help for the options.\n", cmd.error.c_str());
    return kExitUsage;
  }
  Options& options = cmd.options;
  if (Status st = finalize_options(options); !st.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", st.ToString().c_str());
    return kExitUsage;
  }
  ::signal(SIGPIPE, SIG_IGN);
  // `top` and `pgrep thumbmill` find the whole run: the children are
  // thumbmill-dl and thumbmill-w1..N (process_crew.h).
  ::prctl(PR_SET_NAME, "thumbmill", 0, 0, 0);

  // Where S3 requests go and who signs them: flags, environment, profile
  // files (aws_config.h), resolved once here and handed to every child.
  const bool s3_list = std::any_of(options.inputs.begin(), options.inputs.end(),
                                  [](const std::string& input) { return is_s3_url(input); });
  if (auto s3 = resolve_s3_settings(options.s3_flags, process_environment()); s3.ok()) {
    options.s3 = *s3;
  } else if (s3_list || options.out_is_s3()) {
    std::fprintf(stderr, "thumbmill: %s\n", s3.status().ToString().c_str());
    return kExitUsage;
  }
  // --queue: the batch's own commands, or this node's share of it as the list.
  std::optional<BatchStore> batch;  // a node's, until its feed starts
  if (!options.queue_url.empty())
    if (std::optional<int> code = run_batch_command(options, cmd.out_given, batch)) return *code;
  auto list = batch ? Result<std::unique_ptr<SourceFeed>>(std::unique_ptr<SourceFeed>()) : open_inputs(options);
  if (!list.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", list.status().ToString().c_str());
    return list.status().code() == Code::kInvalidArgument || list.status().code() == Code::kIoError ? kExitUsage
                                                                                                    : kExitFatal;
  }
  if (Status st = check_report_path(options); !st.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", st.ToString().c_str());
    return kExitUsage;
  }
  std::shared_ptr<const S3OutputIndex> s3_out;
  if (options.out_is_s3()) {
    // Before anything is downloaded: the bucket is there, and ours to use.
    auto index = open_s3_output(options);
    if (!index.ok()) {
      std::fprintf(stderr, "thumbmill: fatal: --out %s: %s\n", options.out_s3.c_str(),
                   index.status().ToString().c_str());
      return kExitFatal;
    }
    s3_out = std::make_shared<const S3OutputIndex>(std::move(*index));
  } else {
    std::error_code ec;
    std::filesystem::create_directories(options.out_dir, ec);
    if (ec || ::access(options.out_dir.c_str(), W_OK) != 0) {
      std::fprintf(stderr, "thumbmill: fatal: output directory %s is not writable%s%s\n", options.out_dir.c_str(),
                   ec ? ": " : "", ec ? ec.message().c_str() : "");
      return kExitFatal;
    }
    // A node of a batch may share the directory with nodes on other
    // machines: it leaves temp files of writers it cannot see unless stale.
    const std::chrono::seconds grace(options.queue_url.empty() ? 0 : 3600);
    remove_orphan_temp_files(options.out_dir, OutputPlan(options).has_directories(), grace);
    remove_orphan_manifest_temps(options.out_dir, grace);
  }
  remove_stale_run_files(default_temp_root());
  // Said once, before any name is made: the names differ from what was typed.
  if (const OutputPlan plan(options); plan.hash_added() && !options.quiet)
    std::fprintf(stderr, "thumbmill: --name '%s' could give two sources one name: using '%s'\n",
                 options.name_template.c_str(), plan.name_template().text().c_str());

  auto pipeline = make_pipeline(options);
  if (!pipeline.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: %s\n", pipeline.status().ToString().c_str());
    return kExitFatal;
  }
  // Only now, with every start-up check passed, is an earlier report
  // replaced.
  auto report = ReportWriter::Open(options.report_path);
  if (!report.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", report.status().ToString().c_str());
    return kExitUsage;
  }
  // A node starts taking sources only now that it can work on them: a node
  // that cannot start holds none.
  RedisFeed* node = nullptr;
  if (batch) {
    const RedisAddress address = batch->address();
    auto feed = std::make_unique<RedisFeed>(node_settings(options, address), std::move(*batch));
    node = feed.get();
    *list = std::move(feed);
  }
  // Nodes of a batch that share an --out bucket claim its names in Redis.
  std::unique_ptr<RedisStemClaims> shared_claims;
  if (node && options.out_is_s3()) shared_claims = std::make_unique<RedisStemClaims>(node->address(), options.out_s3);
  run_loop::Coordinator coordinator(options, *pipeline, **list, *report, std::move(s3_out), shared_claims.get());
  int code = coordinator.Run();
  if (node) {
    // Results still on their way go out; sources read but not started go back.
    if (Status st = node->Close(std::chrono::seconds(30)); !st.ok()) {
      std::fprintf(stderr, "thumbmill: %s\n", st.ToString().c_str());
      if (code == kExitOk) code = kExitFailures;
    }
    if (!options.quiet) std::fputs(format_node_summary(node->tally(), node->address().display()).c_str(), stderr);
  }
  if (Status st = report->Close(); !st.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: the report is incomplete: %s\n", st.ToString().c_str());
    code = kExitFatal;
  }
  if (coordinator.abandoned_children()) {
    // A thread stuck past --job-timeout can be neither stopped nor joined:
    // the report and summary are out, so end here instead of in ~ThreadCrew.
    pipeline->temp_dir = TempDir();
    list->reset();  // gives standard input its flags back
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace thumbmill
