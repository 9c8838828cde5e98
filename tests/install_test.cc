// `meson install` gives a working tool: installed into a temporary prefix
// with DESTDIR, the thumbmill command finds its helpers in
// libexecdir/thumbmill/ and makes thumbnails; no generic name lands in the
// bin directory; the man page and the bash completion know every option.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "tests/skip.h"
#include "tests/test_support.h"

using namespace thumbmill::testing;
namespace fs = std::filesystem;

namespace {

/// The build tree installed once into a scratch DESTDIR.
struct Installed {
  ScratchDir dest{"install"};
  fs::path bin, helpers, man, completion;
  std::string log;

  Installed() {
    const CommandResult r = run_command({"/usr/bin/env", "meson", "install", "-C", build_dir().string(), "--destdir",
                                         dest.path().string(), "--no-rebuild"});
    log = r.out + r.err;
    // Wherever the prefix is, the staged tree has exactly one bin/thumbmill.
    for (const auto& e : fs::recursive_directory_iterator(dest.path())) {
      if (e.path().filename() == "thumbmill" && e.path().parent_path().filename() == "bin") bin = e.path().parent_path();
      if (e.path().filename() == "thumbmill.1") man = e.path();
      if (e.path().filename() == "thumbmill" && e.path().parent_path().filename() == "completions") completion = e.path();
      if (e.path().filename() == "worker" && e.path().parent_path().filename() == "thumbmill")
        helpers = e.path().parent_path();
    }
  }
};

Installed& installed() {
  static Installed i;
  return i;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

/// Every long option `thumbmill --help` lists.
std::set<std::string> long_options(const fs::path& thumbmill) {
  const CommandResult help = run_command({thumbmill.string(), "--help"});
  REQUIRE(help.exit_code == 0);
  std::set<std::string> options;
  const std::regex option(R"((?:^|[\s,])(--[a-z][a-z0-9-]+))");
  for (auto it = std::sregex_iterator(help.out.begin(), help.out.end(), option); it != std::sregex_iterator(); ++it)
    options.insert((*it)[1]);
  REQUIRE(options.size() > 10);
  return options;
}

}  // namespace

TEST_CASE("meson install puts the command in bin and its helpers in libexec/thumbmill") {
  Installed& i = installed();
  INFO(i.log);
  REQUIRE_FALSE(i.bin.empty());
  CHECK(names_in(i.bin) == std::set<std::string>{"thumbmill", "thumbmill-threaded"});
  REQUIRE_FALSE(i.helpers.empty());
  CHECK(names_in(i.helpers) == std::set<std::string>{"downloader", "uploader", "worker"});
  CHECK(i.helpers.parent_path().filename() != "bin");
  CHECK_FALSE(i.man.empty());
  CHECK_FALSE(i.completion.empty());
}

TEST_CASE("the installed tool makes thumbnails, in both builds") {
  Installed& i = installed();
  REQUIRE_FALSE(i.bin.empty());
  ScratchDir work("installed-run");
  make_images(work / "photos", 3, {"--megapixels", "1"});
  std::string list;
  for (const auto& e : fs::directory_iterator(work / "photos")) list += e.path().string() + "\n";
  write_file(work / "list.txt", list);
  for (const std::string exe : {"thumbmill", "thumbmill-threaded"}) {
    CAPTURE(exe);
    const fs::path out = work / ("out-" + exe);
    const CommandResult r =
        run_command({(i.bin / exe).string(), "--workers", "2", "--out", out.string(), (work / "list.txt").string()},
                    {.env = {{"TMPDIR", work.path().string()}}, .timeout_s = 120});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    int thumbnails = 0;
    for (const auto& e : fs::directory_iterator(out)) thumbnails += e.path().extension() == ".jpg";
    CHECK(thumbnails == 9);
  }
}

TEST_CASE("the man page describes every option --help lists") {
  Installed& i = installed();
  REQUIRE_FALSE(i.man.empty());
  // roff writes a literal '-' as "\-".
  const std::string page = std::regex_replace(read_file(i.man), std::regex(R"(\\-)"), "-");
  for (const std::string& option : long_options(i.bin / "thumbmill")) {
    CAPTURE(option);
    CHECK(page.find(option) != std::string::npos);
  }
}

TEST_CASE("bash completion offers the options --help lists") {
  Installed& i = installed();
  REQUIRE_FALSE(i.completion.empty());
  const fs::path library = "/usr/share/bash-completion/bash_completion";
  if (!fs::exists(library)) THUMBMILL_SKIP("bash-completion is not installed (scripts/setup installs it)");
  const std::string script =
      "source " + library.string() + " && source \"$1\" && "
      "COMP_WORDS=(thumbmill --work); COMP_CWORD=1; COMP_LINE='thumbmill --work'; COMP_POINT=${#COMP_LINE}; "
      "_thumbmill thumbmill --work thumbmill; printf '%s\\n' \"${COMPREPLY[@]}\"";
  const CommandResult r = run_command({"/bin/bash", "-c", script, "bash", i.completion.string()},
                                      {.env = {{"PATH", i.bin.string() + ":/usr/bin:/bin"}}});
  INFO(r.err);
  CHECK(r.out == "--workers\n");
}
