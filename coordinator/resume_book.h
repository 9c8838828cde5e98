// ResumeBook: the coordinator's view of what the output directory remembers
// from earlier runs. It names each source (a stem claimed in the directory,
// shared/stem_claims.h), decides from the source's manifest record whether
// it is done (shared/manifest.h), and records what this run made.
//
// The rule: a source is done only when its record says these options
// (sizes, format, quality) made these files under this stem, the files are
// still there at their recorded sizes, and the source has not changed since:
// a local file has the same size and mtime; an HTTP source with a validator
// is asked with a conditional request (a 304 means done); one without a
// validator is taken at the record's word.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/report.h"
#include "coordinator/s3_output_index.h"
#include "coordinator/shared_stem_claims.h"
#include "shared/fetch_facts.h"
#include "shared/manifest.h"
#include "shared/options.h"
#include "shared/output_names.h"
#include "shared/output_plan.h"
#include "shared/source_list.h"
#include "shared/stem_claims.h"

namespace thumbmill {

class ResumeBook {
 public:
  /// `s3`: what the --out bucket holds (REQUIRES: given when the output is a
  /// bucket, and only then).
  /// `shared`: the stem claims of writers sharing the --out bucket at once
  /// (nodes of a batch; shared_stem_claims.h), consulted after `s3`'s
  /// records; null when this run is the bucket's only writer.
  explicit ResumeBook(const Options& options, std::shared_ptr<const S3OutputIndex> s3 = nullptr,
                      SharedStemClaims* shared = nullptr);

  enum class Verdict {
    kRedo,       // make it (again)
    kSkip,       // done: report the record's outputs
    kAskServer,  // done if the server answers 304 to a conditional request
  };

  /// What the book says about one admitted source.
  struct Entry {
    std::string stem;
    Verdict verdict = Verdict::kRedo;
    std::optional<ManifestRecord> record;  // kSkip, kAskServer: the record that says it is done
    SourceValidator local_file;            // a local source's size and mtime when admitted
  };

  /// Names a well-formed source and judges it (with --force: always kRedo,
  /// names kept). An error when no stem could be claimed (the output
  /// directory's claims cannot be read or written).
  /// A source admitted again (a batch job handed back) keeps its stem.
  Result<Entry> Admit(const SourceLine& line);

  /// The outputs a record names, as the report lists them.
  std::vector<OutputFile> Outputs(const ManifestRecord& record) const;

  /// A source made whole: its record, replacing any older one. `outputs`
  /// are in the plan's order. An error means the manifest cannot be kept
  /// (a source that cannot be recorded at all, e.g. not UTF-8, just has no
  /// record and is made again next time).
  Status RecordMade(const SourceLine& line, const Entry& entry, const FetchFacts& fetch,
                    const std::vector<OutputFile>& outputs);

  /// A source that failed after its outputs may have been touched: its
  /// record goes (the next run makes it again).
  Status Forget(const std::string& location);

  const OutputPlan& plan() const { return plan_; }

 private:
  Verdict Judge(const SourceLine& line, const Entry& entry) const;

  const Options& options_;
  OutputPlan plan_;
  Manifest manifest_;
  StemClaims claims_;
  StemAllocator stems_;
  const std::string fingerprint_;
  std::shared_ptr<const S3OutputIndex> s3_;
  SharedStemClaims* shared_ = nullptr;
};

}  // namespace thumbmill
