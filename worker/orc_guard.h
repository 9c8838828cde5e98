// One lock around liborc's code memory, so threads may share libvips.
//
// liborc 0.4.33 (Debian 12) edits the chunk lists of its executable code
// regions under its lock when it compiles a program, but without it when a
// program is freed (fixed upstream in 0.4.34, commit e48fa54, "Fix for
// potential race in codemem alloc/free"). libvips compiles under its global
// lock and frees (vips_vector_free, when an operation such as reducev is
// disposed) under none. Two threads making thumbnails at once (the threaded
// build's workers, make-images) therefore corrupt those lists now and then:
// "double free or corruption", or a SIGSEGV in orc_code_allocate_codemem.
//
// orc_guard.cc defines orc_program_compile and orc_program_free. libvips
// calls both through its PLT, and the executable comes first in the dynamic
// lookup scope, so libvips reaches these definitions; each takes one lock and
// calls liborc's own (dlsym RTLD_NEXT). Turning libvips's vector path off
// (VIPS_NOVECTOR) would also avoid the race, but it changes every thumbnail:
// its C path rounds differently (PSNR 39-41 dB at 32 px against today's).
//
// The same two definitions keep compiled code (orc_guard.cc, "compiled code,
// kept by program"): libvips builds and compiles the same few programs for
// every image, and orc's compiler is slow (an assembly listing written with
// vsnprintf, and fresh code memory mapped, for each). A program whose every
// compiler input equals one compiled before gets that one's code.
#pragma once

#include <cstdint>

namespace thumbmill {

struct OrcCodeCounts {
  std::uint64_t compiled = 0;  // programs liborc compiled
  std::uint64_t reused = 0;    // programs given code compiled before
};

/// What orc_program_compile did in this process so far.
OrcCodeCounts orc_code_counts();

/// True when libvips's calls to orc_program_compile and orc_program_free
/// reach the locked definitions in orc_guard.cc: the executable exports them.
/// init_vips calls it, which also keeps the definitions in the link.
bool orc_guard_installed();

}  // namespace thumbmill
