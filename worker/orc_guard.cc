// orc_guard.h says why. These two definitions interpose liborc's: keep their
// signatures exactly liborc's (orc/orcprogram.h, orc/orccompiler.h).
#include "worker/orc_guard.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <orc/orc.h>

namespace {

// Held around every compile and every free of an orc program in the process.
// libvips already holds its global lock around compiles; this lock is taken
// inside it there, and alone around frees, so the two never invert.
std::mutex code_memory_lock;

// liborc's own definition of NAME: the next one after this executable.
template <typename Fn>
Fn liborc(const char* name) {
  void* found = ::dlsym(RTLD_NEXT, name);
  if (found == nullptr) {
    // libvips links liborc, so it is loaded whenever libvips calls in here.
    std::fprintf(stderr, "thumbmill: liborc's %s not found: %s\n", name, ::dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(found);
}

}  // namespace

extern "C" {

OrcCompileResult orc_program_compile(OrcProgram* program) {
  static const auto real = liborc<OrcCompileResult (*)(OrcProgram*)>("orc_program_compile");
  std::lock_guard<std::mutex> hold(code_memory_lock);
  return real(program);
}

void orc_program_free(OrcProgram* program) {
  static const auto real = liborc<void (*)(OrcProgram*)>("orc_program_free");
  std::lock_guard<std::mutex> hold(code_memory_lock);
  real(program);
}

}  // extern "C"

namespace thumbmill {

bool orc_guard_installed() {
  return ::dlsym(RTLD_DEFAULT, "orc_program_compile") == reinterpret_cast<void*>(&orc_program_compile) &&
         ::dlsym(RTLD_DEFAULT, "orc_program_free") == reinterpret_cast<void*>(&orc_program_free);
}

}  // namespace thumbmill
