#include "shared/status.h"

#include <cstring>

namespace thumbmill {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid-argument";
    case Code::kIoError: return "io-error";
    case Code::kNetwork: return "network";
    case Code::kTimeout: return "timeout";
    case Code::kHttpStatus: return "http-status";
    case Code::kBlockedAddress: return "blocked-address";
    case Code::kTooLarge: return "too-large";
    case Code::kNotAnImage: return "not-an-image";
    case Code::kUntrustedFormat: return "untrusted-format";
    case Code::kTooManyPixels: return "too-many-pixels";
    case Code::kTooMuchMemory: return "too-much-memory";
    case Code::kCorruptImage: return "corrupt-image";
    case Code::kEncodeFailed: return "encode-failed";
    case Code::kWorkerCrashed: return "worker-crashed";
    case Code::kInterrupted: return "interrupted";
    case Code::kPoison: return "poison";
    case Code::kInternal: return "internal";
  }
  return "unknown";
}

Status Status::FromErrno(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  return Status(Code::kIoError, std::move(msg));
}

}  // namespace thumbmill
