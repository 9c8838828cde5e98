// What the run writes, and where: temp outputs that cannot be redirected by a
// planted name, the start-up clean-up that removes only our own temp files,
// the run's private temp directory and the shared-memory segment's mode, and
// the checked writing and path comparisons the report relies on.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "shared/checked_file.h"
#include "shared/file_identity.h"
#include "shared/output_files.h"
#include "shared/shm_segment.h"
#include "tests/skip.h"

using namespace thumbmill;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path path;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "thumbmill-files-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::span<const std::byte> bytes_of(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// A writer id no process can have (above the kernel's pid_max).
int dead_writer() {
  long max = 4194304;
  std::ifstream("/proc/sys/kernel/pid_max") >> max;
  return static_cast<int>(max + 1);
}

/// The temp names an attacker could predict for a writer in this process:
/// the old fixed pattern ".<name>.tmp.<id>" with our pid and thread id.
std::vector<std::string> predictable_temp_names(const std::string& name) {
  std::vector<std::string> names = {"." + name + ".tmp." + std::to_string(::gettid())};
  if (::gettid() != ::getpid()) names.push_back("." + name + ".tmp." + std::to_string(::getpid()));
  return names;
}

}  // namespace

TEST_CASE("write_file_atomically: a symlink planted at a predictable temp name is not written through") {
  Scratch dir;
  const fs::path victim = dir / "victim.txt";  // stands for ~/.bashrc
  write_text(victim, "precious");
  const fs::path out = dir / "out";
  fs::create_directories(out);
  for (const auto& name : predictable_temp_names("cat_200.jpg")) fs::create_symlink(victim, out / name);

  const std::string thumb = "JPEG bytes";
  const Status st = write_file_atomically(out / "cat_200.jpg", bytes_of(thumb), /*durable=*/false);
  INFO(st.ToString());
  CHECK(st.ok());
  CHECK(read_text(victim) == "precious");
  CHECK(read_text(out / "cat_200.jpg") == thumb);
  CHECK_FALSE(fs::is_symlink(out / "cat_200.jpg"));
  // The planted links are left alone (they are not ours), and nothing else.
  for (const auto& name : predictable_temp_names("cat_200.jpg")) CHECK(fs::is_symlink(out / name));
  CHECK(names_in(out).size() == predictable_temp_names("cat_200.jpg").size() + 1);
}

TEST_CASE("write_file_atomically: a hard link planted at a predictable temp name is not truncated") {
  Scratch dir;
  const fs::path victim = dir / "victim.txt";
  write_text(victim, "precious");
  for (const auto& name : predictable_temp_names("cat_200.jpg")) fs::create_hard_link(victim, dir / name);

  const std::string thumb = "JPEG bytes";
  CHECK(write_file_atomically(dir / "cat_200.jpg", bytes_of(thumb), /*durable=*/true).ok());
  CHECK(read_text(victim) == "precious");
  CHECK(read_text(dir / "cat_200.jpg") == thumb);
  CHECK(fs::hard_link_count(dir / "cat_200.jpg") == 1);
}

TEST_CASE("write_file_atomically: a symlink at the final name is replaced, not followed") {
  Scratch dir;
  const fs::path victim = dir / "victim.txt";
  write_text(victim, "precious");
  fs::create_symlink(victim, dir / "cat_200.jpg");
  CHECK(write_file_atomically(dir / "cat_200.jpg", bytes_of(std::string("new")), false).ok());
  CHECK(read_text(victim) == "precious");
  CHECK_FALSE(fs::is_symlink(dir / "cat_200.jpg"));
  CHECK(read_text(dir / "cat_200.jpg") == "new");
}

TEST_CASE("temp names are not predictable: two for the same file and writer differ") {
  const fs::path a = output_temp_path("/out/cat_200.jpg", 1234);
  const fs::path b = output_temp_path("/out/cat_200.jpg", 1234);
  CHECK(a != b);
  CHECK(a.parent_path() == "/out");
  CHECK(a.filename().string().starts_with(".cat_200.jpg.tmp.1234."));
  CHECK(is_output_temp_name(a.filename().string()));
  CHECK(is_output_temp_name(b.filename().string()));
}

TEST_CASE("is_output_temp_name: only exactly our own pattern") {
  for (const char* name : {".thesis.tmp.final", ".thesis.tmp.123", ".thesis.tmp.", ".a.tmp.12.",
                           ".a.tmp.x.0123456789abcdef", ".a.tmp.12.0123456789ABCDEF", ".a.tmp.12.0123456789abcde",
                           ".a.tmp.12.0123456789abcdef0", ".a.tmp.012.0123456789abcdef", "..tmp.12.0123456789abcdef",
                           "a.tmp.12.0123456789abcdef", "..a.tmp.12.0123456789abcdef",
                           ".a.tmp.12.0123456789abcdef.jpg", ".tmp.12.0123456789abcdef", ".a.tmp.-12.0123456789abcdef",
                           ".a.tmp.12.0123456789abcdeg", ".bashrc", "."}) {
    INFO(name);
    CHECK_FALSE(is_output_temp_name(name));
  }
  CHECK(is_output_temp_name(".cat_200.jpg.tmp.12.0123456789abcdef"));
  CHECK(is_output_temp_name(".a.tmp.b.tmp.7.fedcba9876543210"));
}

TEST_CASE("remove_orphan_temp_files: removes dead writers' temp files, nothing else") {
  Scratch dir;
  const std::vector<std::string> keep = {".thesis.tmp.final", ".thesis.tmp.123", ".notes.tmp.", "thesis.tmp.9",
                                         ".cache.tmp.1.x", "cat_200.jpg", ".bashrc"};
  for (const auto& name : keep) write_text(dir / name, "user data");
  const fs::path orphan = output_temp_path(dir / "cat_200.jpg", dead_writer());
  const fs::path orphan2 = output_temp_path(dir / "dog_64.webp", dead_writer());
  const fs::path live = output_temp_path(dir / "cow_64.webp", ::getpid());  // a writer still at work
  for (const auto& p : {orphan, orphan2, live}) write_text(p, "half a thumbnail");

  CHECK(remove_orphan_temp_files(dir.path) == 2);
  CHECK_FALSE(fs::exists(orphan));
  CHECK_FALSE(fs::exists(orphan2));
  CHECK(fs::exists(live));
  for (const auto& name : keep) {
    INFO(name);
    CHECK(read_text(dir / name) == "user data");
  }
}

TEST_CASE("remove_orphan_temp_files with a grace: a recent temp of a writer not seen here stays") {
  // A batch's nodes on other machines may write into a shared directory:
  // their writers are not processes here, so only age tells an orphan.
  Scratch dir;
  const fs::path recent = output_temp_path(dir / "cat_200.jpg", dead_writer());
  const fs::path stale = output_temp_path(dir / "dog_200.jpg", dead_writer());
  for (const auto& p : {recent, stale}) write_text(p, "half a thumbnail");
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(2));
  CHECK(remove_orphan_temp_files(dir.path, false, std::chrono::hours(1)) == 1);
  CHECK(fs::exists(recent));
  CHECK_FALSE(fs::exists(stale));
  CHECK(remove_orphan_temp_files(dir.path) == 1);  // no grace: a dead writer is enough
  CHECK_FALSE(fs::exists(recent));
}

TEST_CASE("create_run_temp_dir: a pre-created or planted directory of the predictable name is never used") {
  Scratch root;
  const fs::path predictable = root / run_name();

  SUBCASE("a directory someone else made, open to all") {
    fs::create_directories(predictable);
    ::chmod(predictable.c_str(), 0777);
    if (::geteuid() == 0) CHECK(::chown(predictable.c_str(), 65534, 65534) == 0);
  }
  SUBCASE("a symlink to a directory someone else reads") {
    fs::create_directories(root / "elsewhere");
    fs::create_directory_symlink(root / "elsewhere", predictable);
  }
  auto dir = create_run_temp_dir(root.path);
  REQUIRE(dir.ok());
  CHECK(*dir != predictable);
  CHECK(dir->parent_path() == root.path);
  struct stat st {};
  REQUIRE(::lstat(dir->c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(st.st_uid == ::geteuid());
  CHECK(fs::is_empty(*dir));
  if (fs::exists(root / "elsewhere")) CHECK(fs::is_empty(root / "elsewhere"));
  // Two runs in one process (the tests) get two directories.
  auto second = create_run_temp_dir(root.path);
  REQUIRE(second.ok());
  CHECK(*second != *dir);
}

TEST_CASE("remove_stale_run_files: only real directories of ours, never a planted link or another's directory") {
  Scratch root;
  fs::create_directories(root / "victim");
  write_text(root / "victim" / "data", "precious");
  // Names of runs whose creator is gone (no process has that pid).
  const std::string stale = "thumbmill-" + std::to_string(dead_writer()) + "-";
  fs::create_directory_symlink(root / "victim", root / (stale + "1"));
  fs::create_directories(root / (stale + "2"));  // a stale run directory of ours: removed
  if (::geteuid() == 0) {
    fs::create_directories(root / (stale + "3"));
    REQUIRE(::chown((root / (stale + "3")).c_str(), 65534, 65534) == 0);
  }
  remove_stale_run_files(root.path);
  CHECK(fs::is_symlink(root / (stale + "1")));
  CHECK(read_text(root / "victim" / "data") == "precious");
  CHECK_FALSE(fs::exists(root / (stale + "2")));
  if (::geteuid() == 0) CHECK(fs::exists(root / (stale + "3")));
}

TEST_CASE("remove_stale_run_files: a stale-looking segment of another user is left alone") {
  if (::geteuid() != 0) THUMBMILL_SKIP("needs root to make a segment owned by another user");
  const std::string name = "thumbmill-" + std::to_string(dead_writer()) + "-7";
  const int fd = ::shm_open(("/" + name).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::fchown(fd, 65534, 65534) == 0);
  ::close(fd);
  Scratch root;
  remove_stale_run_files(root.path);
  CHECK(fs::exists(fs::path(kShmDir) / name));
  ::shm_unlink(("/" + name).c_str());
}

TEST_CASE("the shared-memory segment is created with mode 0600") {
  auto segment = SharedSegment::Create(1 << 20);
  REQUIRE(segment.ok());
  struct stat st {};
  REQUIRE(::stat((fs::path(kShmDir) / (*segment)->name()).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(st.st_uid == ::geteuid());
}

TEST_CASE("same_file: by device and inode when both exist, by normalised path otherwise") {
  Scratch dir;
  write_text(dir / "list.txt", "a\n");
  fs::create_symlink(dir / "list.txt", dir / "link");
  fs::create_hard_link(dir / "list.txt", dir / "hard");
  write_text(dir / "other.txt", "a\n");
  CHECK(same_file(dir / "list.txt", dir / "list.txt"));
  CHECK(same_file(dir / "list.txt", dir.path / "." / "list.txt"));
  CHECK(same_file(dir / "link", dir / "list.txt"));
  CHECK(same_file(dir / "hard", dir / "list.txt"));
  CHECK_FALSE(same_file(dir / "other.txt", dir / "list.txt"));
  // Neither exists yet: the paths decide.
  CHECK(same_file(dir / "new.jsonl", dir.path / "sub" / ".." / "new.jsonl"));
  CHECK_FALSE(same_file(dir / "new.jsonl", dir / "new2.jsonl"));
  CHECK_FALSE(same_file(dir / "new.jsonl", dir / "list.txt"));
}

TEST_CASE("refuse_to_overwrite names the option, the file and what it is") {
  Scratch dir;
  write_text(dir / "list.txt", "a\n");
  fs::create_symlink(dir / "list.txt", dir / "r.jsonl");
  const Status st = refuse_to_overwrite("--report", dir / "r.jsonl", {{"the list", dir / "list.txt"}});
  CHECK(st.code() == Code::kInvalidArgument);
  CHECK(st.message().starts_with("--report " + (dir / "r.jsonl").string() + " is the list"));
  CHECK(refuse_to_overwrite("--report", dir / "fresh.jsonl", {{"the list", dir / "list.txt"}, {"nothing", ""}}).ok());
}

TEST_CASE("CheckedFile: a failed write sticks and is reported by Close") {
  if (!fs::exists("/dev/full")) THUMBMILL_SKIP("no /dev/full on this machine");
  auto file = CheckedFile::OpenForWriting("/dev/full");
  REQUIRE(file.ok());
  const Status first = file->Write(std::string_view("line\n"));
  CHECK_FALSE(first.ok());
  CHECK(first.message().find("No space left on device") != std::string::npos);
  CHECK(file->Write(std::string_view("more\n")).message() == first.message());
  CHECK(file->Close().message() == first.message());
}

TEST_CASE("CheckedFile: writes every byte and closes cleanly") {
  Scratch dir;
  auto file = CheckedFile::OpenForWriting(dir / "r.jsonl");
  REQUIRE(file.ok());
  const std::string big(1 << 20, 'x');
  CHECK(file->Write(std::string_view(big)).ok());
  CHECK(file->Sync().ok());
  CHECK(file->Close().ok());
  CHECK(fs::file_size(dir / "r.jsonl") == big.size());
}

// ----- issue 9: outputs in subdirectories (--name '{size}/{stem}.{ext}') -----

TEST_CASE("write_output_file: creates the name's directories and writes the file whole") {
  Scratch dir;
  REQUIRE(write_output_file(dir.path, "200/a/cat.jpg", bytes_of("jpeg"), false).ok());
  CHECK(read_text(dir / "200/a/cat.jpg") == "jpeg");
  REQUIRE(write_output_file(dir.path, "200/a/cat.jpg", bytes_of("again"), true).ok());  // durable, replaced
  CHECK(read_text(dir / "200/a/cat.jpg") == "again");
  CHECK(names_in(dir / "200/a") == std::vector<std::string>{"cat.jpg"});  // no temp left
  REQUIRE(write_output_file(dir.path, "cat_200.jpg", bytes_of("flat"), false).ok());
  CHECK(read_text(dir / "cat_200.jpg") == "flat");
}

TEST_CASE("write_output_file: a symlink planted as a directory is not followed out of --out") {
  Scratch dir, outside;
  fs::create_directory(dir / "out");
  fs::create_directory_symlink(outside.path, dir / "out/200");
  Status status = write_output_file(dir / "out", "200/cat.jpg", bytes_of("jpeg"), false);
  CHECK_FALSE(status.ok());
  CHECK(status.message().find("200") != std::string::npos);
  CHECK(fs::is_empty(outside.path));
  // A file where a directory should be is refused too, and left alone.
  write_text(dir / "out/64", "user data");
  CHECK_FALSE(write_output_file(dir / "out", "64/cat.jpg", bytes_of("jpeg"), false).ok());
  CHECK(read_text(dir / "out/64") == "user data");
}

TEST_CASE("write_output_file: '..', '.', empty and absolute names are refused") {
  Scratch dir;
  fs::create_directory(dir / "out");
  for (const char* bad : {"../cat.jpg", "a/../../cat.jpg", "./cat.jpg", "a//cat.jpg", "/cat.jpg", "a/", ""}) {
    CAPTURE(bad);
    CHECK(write_output_file(dir / "out", bad, bytes_of("x"), false).code() == Code::kInvalidArgument);
  }
  CHECK(names_in(dir.path) == std::vector<std::string>{"out"});
}

TEST_CASE("remove_orphan_temp_files: recursive finds temps in subdirectories, not in .thumbmill") {
  Scratch dir;
  fs::create_directories(dir / "200/a");
  fs::create_directories(dir / ".thumbmill/manifest");
  const fs::path deep = output_temp_path(dir / "200/a/cat.jpg", dead_writer());
  const fs::path top = output_temp_path(dir / "cat_200.jpg", dead_writer());
  const fs::path ours = output_temp_path(dir / ".thumbmill/manifest/x.json", dead_writer());
  for (const auto& p : {deep, top, ours}) write_text(p, "half");
  write_text(dir / "200/a/cat.jpg", "whole");
  CHECK(remove_orphan_temp_files(dir.path) == 1);  // flat: the top one only
  CHECK(fs::exists(deep));
  CHECK(remove_orphan_temp_files(dir.path, /*recursive=*/true) == 1);
  CHECK_FALSE(fs::exists(deep));
  CHECK(fs::exists(ours));  // remove_orphan_manifest_temps' business
  CHECK(read_text(dir / "200/a/cat.jpg") == "whole");
}
