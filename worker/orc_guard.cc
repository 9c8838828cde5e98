// orc_guard.h says why. These two definitions interpose liborc's: keep their
// signatures exactly liborc's (orc/orcprogram.h, orc/orccompiler.h).
#include "worker/orc_guard.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

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

// ----- compiled code, kept by program ------------------------------------
//
// Everything orc's compiler reads from a program, as bytes: its counts and
// shape flags, every instruction, and every variable but its two names. Two
// programs with the same key compile to the same machine code in one process
// (the target and its flags are the process's). Padding is never read: each
// field is appended on its own.
std::string program_key(const OrcProgram& p) {
  std::string key;
  key.reserve(4096);
  auto put = [&key](const auto& field) { key.append(reinterpret_cast<const char*>(&field), sizeof field); };
  for (int v : {p.n_insns, p.n_src_vars, p.n_dest_vars, p.n_param_vars, p.n_const_vars, p.n_temp_vars,
                p.n_accum_vars, p.is_2d, p.constant_n, p.n_multiple, p.n_minimum, p.n_maximum, p.constant_m})
    put(v);
  put(p.backup_func);
  for (int i = 0; i < p.n_insns && i < ORC_N_INSNS; ++i) {
    const OrcInstruction& in = p.insns[i];
    put(in.opcode);
    for (int a : in.dest_args) put(a);
    for (int a : in.src_args) put(a);
    put(in.rule);
    put(in.flags);
    put(in.line);
  }
  for (const OrcVariable& v : p.vars) {
    for (int f : {v.size, static_cast<int>(v.vartype), v.used, v.first_use, v.last_use, v.replaced,
                  v.replacement, v.alloc, v.is_chained, v.is_aligned, v.alignment, v.is_uncached,
                  v.ptr_register, v.ptr_offset, v.mask_alloc, v.aligned_data, v.param_type, v.load_dest,
                  v.update_type, v.need_offset_reg, v.has_parameter, v.parameter})
      put(f);
    put(v.value.i);
    put(v.flags);
  }
  return key;
}

// Code compiled once and kept for the life of the process, shared by every
// later program with the same key. A kept OrcCode is never freed: a program
// that points to it lets go of it before liborc frees the program. libvips
// compiles the same few programs for every image (reducev: one per image,
// the same for the same shrink), and compiling one costs ~0.5 ms: the
// compiler writes an assembly listing with vsnprintf, instruction by
// instruction, and maps fresh code memory.
struct KeptCode {
  OrcCode* code;
  void* exec;
};
constexpr std::size_t kMaxKeptPrograms = 256;  // a bound, far above what libvips makes

// All guarded by code_memory_lock.
struct Kept {
  std::unordered_map<std::string, KeptCode> by_key;
  std::unordered_set<const OrcCode*> codes;
  thumbmill::OrcCodeCounts counts;
};

// Never destroyed: libvips may free programs while the process exits, after
// static destructors have run, and the kept code must stay reachable to the
// end (LeakSanitizer checks at exit).
Kept& kept() {
  static Kept* const instance = new Kept;
  return *instance;
}

}  // namespace

extern "C" {

OrcCompileResult orc_program_compile(OrcProgram* program) {
  static const auto real = liborc<OrcCompileResult (*)(OrcProgram*)>("orc_program_compile");
  std::lock_guard<std::mutex> hold(code_memory_lock);
  // Compiled before: liborc would free its code first, so kept code is let
  // go of here; a program's own code is compiled again the ordinary way.
  Kept& k = kept();
  if (k.codes.count(program->orccode) != 0) program->orccode = nullptr;
  if (program->orccode != nullptr) {
    ++k.counts.compiled;
    return real(program);
  }
  std::string key = program_key(*program);
  if (auto it = k.by_key.find(key); it != k.by_key.end()) {
    program->orccode = it->second.code;
    program->code_exec = it->second.exec;
    ++k.counts.reused;
    return ORC_COMPILE_RESULT_OK;
  }
  const OrcCompileResult result = real(program);
  ++k.counts.compiled;
  // Only real machine code is kept: a failure or the emulator is left to
  // liborc's ordinary handling.
  if (result == ORC_COMPILE_RESULT_OK && program->orccode != nullptr && k.by_key.size() < kMaxKeptPrograms) {
    k.by_key.emplace(std::move(key), KeptCode{program->orccode, program->code_exec});
    k.codes.insert(program->orccode);
  }
  return result;
}

void orc_program_free(OrcProgram* program) {
  static const auto real = liborc<void (*)(OrcProgram*)>("orc_program_free");
  std::lock_guard<std::mutex> hold(code_memory_lock);
  if (program != nullptr && kept().codes.count(program->orccode) != 0) program->orccode = nullptr;  // kept
  real(program);
}

}  // extern "C"

namespace thumbmill {

OrcCodeCounts orc_code_counts() {
  std::lock_guard<std::mutex> hold(code_memory_lock);
  return kept().counts;
}

bool orc_guard_installed() {
  return ::dlsym(RTLD_DEFAULT, "orc_program_compile") == reinterpret_cast<void*>(&orc_program_compile) &&
         ::dlsym(RTLD_DEFAULT, "orc_program_free") == reinterpret_cast<void*>(&orc_program_free);
}

}  // namespace thumbmill
