// libjpeg's error reporting for the direct decoder and encoder: error_exit
// must not return, so it formats the message and longjmps back to the
// caller's setjmp. Between the setjmp and libjpeg's calls, keep no object
// with a destructor: the jump skips destructors.
#pragma once

#include <csetjmp>
#include <cstdio>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

namespace thumbmill {

struct LibjpegErrors {
  jpeg_error_mgr pub;  // first: libjpeg sees only this part
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = "";  // why it failed
  // libvips puts the first warning in its error buffer, ahead of the error
  // itself, and a failure is reported by the buffer's first line.
  char first_warning[JMSG_LENGTH_MAX] = "";

  /// Installs these handlers on `cinfo` (before jpeg_create_*). Warnings
  /// pass, as with libvips' fail_on=error, until the hundredth.
  void Attach(j_common_ptr cinfo) {
    cinfo->err = jpeg_std_error(&pub);
    pub.error_exit = on_error;
    pub.emit_message = on_message;
  }

  /// What libvips would report: its first warning if there was one.
  const char* Reason() const { return first_warning[0] != '\0' ? first_warning : message; }

 private:
  [[noreturn]] static void on_error(j_common_ptr cinfo) {
    auto* errors = reinterpret_cast<LibjpegErrors*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, errors->message);
    std::longjmp(errors->jump, 1);
  }
  static void on_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;  // trace messages
    if (++cinfo->err->num_warnings == 1) {
      (*cinfo->err->format_message)(cinfo, reinterpret_cast<LibjpegErrors*>(cinfo->err)->first_warning);
    } else if (cinfo->err->num_warnings >= 100) {
      (*cinfo->err->error_exit)(cinfo);
    }
  }
};

}  // namespace thumbmill
