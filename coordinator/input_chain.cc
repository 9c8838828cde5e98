#include "coordinator/input_chain.h"

namespace thumbmill {
namespace {

/// Whether `kind`'s sources are numbered by the chain, not by a list.
bool numbered_here(InputKind kind) { return kind == InputKind::kDirectory || kind == InputKind::kImage; }

class InputChain : public SourceFeed {
 public:
  InputChain(std::vector<Input> inputs, InputOpener open) : inputs_(std::move(inputs)), open_(std::move(open)) {}

  std::optional<SourceLine> TryNext() override {
    while (!done_) {
      if (!current_) {
        if (next_ == inputs_.size()) {
          done_ = true;
          break;
        }
        const Input& input = inputs_[next_++];
        if (input.kind == InputKind::kImage) return Numbered(ImageSource(input.arg));
        auto feed = open_(input);
        if (!feed.ok()) return Numbered(Unopened(input.arg, feed.status()));
        current_ = std::move(*feed);
        current_kind_ = input.kind;
      }
      if (auto line = current_->TryNext()) {
        if (numbered_here(current_kind_)) return Numbered(std::move(*line));
        return line;
      }
      if (!current_->done()) return std::nullopt;  // more later: poll current_->wait_fd()
      if (!current_->status().ok()) {
        status_ = current_->status();
        done_ = true;
      }
      current_.reset();  // closes it (standard input gets its flags back)
    }
    return std::nullopt;
  }
  bool done() const override { return done_; }
  // Between two inputs TryNext has always opened the next one, so while the
  // chain is not done there is a current feed.
  int wait_fd() const override { return current_ ? current_->wait_fd() : -1; }
  const Status& status() const override { return status_; }
  /// The current input's unread sources when it can count them and it is the
  /// last input; nullopt when the rest cannot be known cheaply.
  std::optional<std::uint64_t> CountRest() override {
    if (next_ < inputs_.size()) return std::nullopt;
    return current_ ? current_->CountRest() : std::optional<std::uint64_t>(0);
  }

 private:
  SourceLine Numbered(SourceLine line) {
    line.line_number = ++numbered_;
    return line;
  }

  static SourceLine ImageSource(const std::string& path) {
    SourceLine line;
    line.text = line.display = line.location = path;
    line.kind = SourceKind::kFile;
    if (path.size() > kMaxSourceLength)
      line.status = Status(Code::kInvalidArgument, "path longer than " + std::to_string(kMaxSourceLength) + " bytes");
    return line;
  }

  static SourceLine Unopened(const std::string& arg, const Status& why) {
    SourceLine line = ImageSource(arg);
    line.status = why;
    return line;
  }

  std::vector<Input> inputs_;
  InputOpener open_;
  std::size_t next_ = 0;
  std::unique_ptr<SourceFeed> current_;
  InputKind current_kind_ = InputKind::kList;
  std::uint64_t numbered_ = 0;
  bool done_ = false;
  Status status_;
};

}  // namespace

std::unique_ptr<SourceFeed> chain_inputs(std::vector<Input> inputs, InputOpener open) {
  return std::make_unique<InputChain>(std::move(inputs), std::move(open));
}

}  // namespace thumbmill
