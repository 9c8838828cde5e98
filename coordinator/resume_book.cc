#include "coordinator/resume_book.h"

namespace thumbmill {

ResumeBook::ResumeBook(const Options& options, std::shared_ptr<const S3OutputIndex> s3, SharedStemClaims* shared)
    : options_(options),
      plan_(options),
      manifest_(options.out_dir, options.fsync),
      claims_(options.out_dir),
      fingerprint_(options_fingerprint(options)),
      s3_(std::move(s3)),
      shared_(shared) {}

Result<ResumeBook::Entry> ResumeBook::Admit(const SourceLine& line) {
  const std::string& location = line.location;
  Entry entry;
  std::optional<ManifestRecord> record = s3_ ? s3_->Record(location) : manifest_.Load(location);
  // A stem another source owns, in this run or any earlier one, is never
  // this source's; the one its record names is tried first.
  auto claim = [&](const std::string& c) -> Result<bool> {
    if (!s3_) return claims_.Claim(c, location);
    const auto owner = s3_->StemOwner(c);
    if (owner && *owner != location) return false;
    return shared_ ? shared_->Claim(c, location) : Result<bool>(true);
  };
  auto stem = stems_.Allocate(location, claim, record ? record->stem : std::string(), plan_.stem_base(location));
  if (!stem.ok()) return stem.status();
  entry.stem = std::move(*stem);
  if (line.kind == SourceKind::kFile) {
    // Taken before the worker reads it: a change after this is seen next run.
    if (auto v = local_file_validator(location); v.ok()) entry.local_file = *v;
  }
  entry.record = std::move(record);
  entry.verdict = options_.force ? Verdict::kRedo : Judge(line, entry);
  if (entry.verdict == Verdict::kRedo) entry.record.reset();
  return entry;
}

ResumeBook::Verdict ResumeBook::Judge(const SourceLine& line, const Entry& entry) const {
  const std::optional<ManifestRecord>& record = entry.record;
  if (!record || record->stem != entry.stem || record->options != fingerprint_) return Verdict::kRedo;
  const bool intact = s3_ ? s3_->OutputsIntact(*record) : manifest_.OutputsIntact(*record);
  if (record->outputs.size() != plan_.count() || !intact) return Verdict::kRedo;
  for (std::size_t i = 0; i < plan_.count(); ++i)
    if (record->outputs[i].name !=
        plan_.file_name({entry.stem, line.location}, i, record->outputs[i].width, record->outputs[i].height))
      return Verdict::kRedo;
  if (line.kind == SourceKind::kFile) {
    const SourceValidator& was = record->validator;
    const SourceValidator& now = entry.local_file;
    const bool same = was.has_file_stat && now.has_file_stat && was.file_size == now.file_size &&
                      was.mtime_ns == now.mtime_ns;
    return same ? Verdict::kSkip : Verdict::kRedo;
  }
  return record->validator.has_http() ? Verdict::kAskServer : Verdict::kSkip;
}

std::vector<OutputFile> ResumeBook::Outputs(const ManifestRecord& record) const {
  std::vector<OutputFile> outputs;
  for (const ManifestOutput& o : record.outputs)
    outputs.push_back({plan_.to_s3() ? plan_.object_named(o.name).url() : (options_.out_dir / o.name).string(),
                       o.width, o.height, o.bytes});
  return outputs;
}

Status ResumeBook::RecordMade(const SourceLine& line, const Entry& entry, const FetchFacts& fetch,
                              const std::vector<OutputFile>& outputs) {
  if (s3_) return Status::Ok();  // the uploader stored it, after the thumbnails
  ManifestRecord record;
  record.source = line.location;
  record.stem = entry.stem;
  record.options = fingerprint_;
  for (std::size_t i = 0; i < outputs.size(); ++i)
    record.outputs.push_back({plan_.file_name({entry.stem, line.location}, i, outputs[i].width, outputs[i].height),
                              outputs[i].width, outputs[i].height, outputs[i].bytes});
  if (line.kind == SourceKind::kFile) {
    record.validator = entry.local_file;
  } else {
    record.validator.etag = text_of(fetch.etag);
    record.validator.last_modified = text_of(fetch.last_modified);
  }
  Status st = manifest_.Store(record);
  if (st.code() == Code::kInvalidArgument) return manifest_.Remove(record.source);  // not storable: made again next time
  return st;
}

Status ResumeBook::Forget(const std::string& location) {
  // In a bucket an older record stays: it names the validator of the source
  // it was made from, which the next run checks again, and thumbnails
  // overwritten since by a failed source's PUTs came from that same source
  // or fail that check.
  if (s3_) return Status::Ok();
  return manifest_.Remove(location);
}

}  // namespace thumbmill
