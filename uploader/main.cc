// The uploader process: started by the coordinator when --out is a bucket,
// with UploadOutcomes going out on fd 4 (wire.h). See uploader_loop.h.
#include <unistd.h>

#include <curl/curl.h>

#include "shared/process_setup.h"
#include "shared/wire.h"
#include "uploader/uploader_loop.h"

int main(int argc, char** argv) {
  using namespace thumbmill;
  auto child = attach_child(argc, argv);
  if (!child.ok()) return child_failed_to_start("uploader", child.status());
  if (!child->upload_queue)
    return child_failed_to_start("uploader", Status(Code::kInternal, "no upload queue (is --out a bucket?)"));
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return child_failed_to_start("uploader", Status(Code::kInternal, "libcurl failed to initialise"));
  const int code = run_uploader(*child->upload_queue, child->args.options, kResultFd, ::getpid());
  curl_global_cleanup();
  return code;
}
