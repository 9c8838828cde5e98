#!/usr/bin/env python3
"""benchlib: what scripts/compare and scripts/bench share (Python 3, stdlib only).

- the measuring runner (measure()): every contender is run and measured the
  same way, from outside, by a separate small runner process
  (`python3 scripts/lib/benchlib.py measure ...`, usable by hand too):
    * wall time: from just before posix_spawn of the command to the return of
      wait4() on it (time.monotonic);
    * CPU time: user and system seconds of the whole process tree. The runner
      makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every
      descendant is reaped either by its own parent (then Linux folds its
      usage into that parent's, which wait4 on the command returns) or, if it
      was orphaned, by the runner itself (its wait4 usage is added);
    * peak memory, sampled: every 20 ms the runner walks its process tree
      (/proc/PID/task/TID/children) and reads the resident size of every
      descendant (/proc/PID/statm). "peak RSS sum" is the largest sum of RSS
      over all processes at one sample: a page shared by several processes
      (libraries, the coordinator's shared-memory arena) counts once per
      process. "peak PSS sum" is the same with Pss from
      /proc/PID/smaps_rollup, where a shared page is divided among its
      sharers, so the sum counts it once: the honest figure for what a run
      takes from the machine. Shared memory (Pss_Shmem) is left out of it:
      the queue segment is measured whole in /dev/shm instead (peak_shm_mb). smaps_rollup walks page tables (~2.5 ms of
      kernel time per sample of a coordinator tree), so PSS is read only
      every 10th sample (200 ms) and when the RSS sum passes by 5 % the
      largest one PSS was read at. The sampler's own CPU time (outside the
      measured tree) is reported as sampler_cpu_s: ~1 ms per sample of a
      coordinator tree, i.e. ~5 % of one core at 20 ms.
      Sampling misses peaks shorter than the interval.
      Also recorded: the largest ru_maxrss wait4 returned (one process's peak,
      not a sum).
- machine header, package installation (apt-get as root, sudo otherwise),
  scripts/setup, image sets (generated with make-images under .bench/images
  and reused), the loopback server (scripts/serve), tables and CSV, cleanup.
"""

import argparse
import csv
import ctypes
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field, asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"          # generated data; meant to be gitignored
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"}
JPEG_EXTS = {".jpg", ".jpeg"}
PROCESS_BIN = ROOT / "build/coordinator/coordinator"
THREADED_BIN_DEFAULT = ROOT / "build/coordinator/coordinator-threaded"
MAKE_IMAGES_BIN = ROOT / "build/scripts/make-images"

PROG = "benchlib"


def set_prog(name):
    global PROG
    PROG = name


def log(msg):
    """Progress goes to stderr; the report (header, tables) to stdout."""
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def die(msg, status=1):
    print(f"{PROG}: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(status)


# ---------------------------------------------------------------- cleanup

_cleanups = []


def on_exit(fn):
    """Registers fn to run at exit (last registered runs first)."""
    _cleanups.append(fn)
    return fn


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # cleanup must go on
            print(f"{PROG}: cleanup: {e}", file=sys.stderr)


def install_exit_handlers():
    """Cleanups run on normal exit, on exceptions, on SIGINT/SIGTERM/SIGHUP."""
    import atexit
    atexit.register(_run_cleanups)

    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


def private_tmpdir(prefix):
    """A temp dir under .bench/tmp, removed at exit."""
    (BENCH_DIR / "tmp").mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=BENCH_DIR / "tmp"))
    on_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def fresh_dir(parent, name):
    d = Path(parent) / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


# ---------------------------------------------------------------- machine

def machine_info():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    osname = platform.system()
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "mem_gib": mem_gib,
        "os": osname,
    }


def nproc():
    return len(os.sched_getaffinity(0))


def loadavg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def print_header(script, argv):
    m = machine_info()
    cmd = shlex.join([script] + list(argv))
    print(f"# command: {cmd}")
    print(f"# machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']:.1f} GiB RAM, "
          f"kernel {m['kernel']}, {m['os']}")
    print(f"# started: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, "
          f"load average {loadavg()}", flush=True)
    busy_warning()
    return m


def busy_warning(own_load=0.0):
    """A line when something else loads the machine (timings then are noisy).
    own_load: what the benchmark itself adds to the 1-minute load average
    (at the end of a run its own work keeps up to nproc cores busy)."""
    try:
        load1 = float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError):
        return
    if load1 > own_load + 0.5 * nproc():
        print(f"# WARNING: load average {load1:.2f} on {nproc()} cores: other work is running, "
              f"timings are noisy", flush=True)


# ---------------------------------------------------------------- packages and build

def _sudo():
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo"):
        return ["sudo"]
    die("need root or sudo to install Debian packages")


def missing_debian_packages(packages):
    missing = []
    for p in packages:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(p)
    return missing


def ensure_debian_packages(packages):
    """Installs the missing ones (apt-get as root, sudo otherwise). Not timed."""
    missing = missing_debian_packages(packages)
    if not missing:
        return []
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = _sudo()
    subprocess.run(sudo + ["apt-get", "update", "-qq"], env=env, check=True,
                   stdout=sys.stderr)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return missing


def run_setup():
    """scripts/setup: missing build packages, then ninja -C build. Not timed."""
    log("running scripts/setup")
    r = subprocess.run([str(ROOT / "scripts/setup")], cwd=ROOT, stdout=sys.stderr)
    if r.returncode != 0:
        die(f"scripts/setup failed (exit {r.returncode})")


def threaded_bin(script):
    """The threaded build, or a clear failure if it is not there."""
    env = os.environ.get("THUMBMILL_THREADED_BIN")
    path = Path(env) if env else THREADED_BIN_DEFAULT
    if not path.is_absolute():
        path = (ROOT / path)
    if not (path.is_file() and os.access(path, os.X_OK)):
        if env:
            die(f"THUMBMILL_THREADED_BIN={env}: no executable there")
        die(f"{path.relative_to(ROOT)} does not exist: the threaded build of the coordinator "
            f"is not built (yet). {script} needs it for the 'threaded' and 'sequential' rows. "
            f"To try the script anyway, point THUMBMILL_THREADED_BIN at another binary, e.g. "
            f"THUMBMILL_THREADED_BIN=build/coordinator/coordinator {script} ...")
    return path


def threaded_warning(path):
    """A line for the report when the threaded build is stood in for."""
    if os.environ.get("THUMBMILL_THREADED_BIN"):
        try:
            same = path.resolve() == PROCESS_BIN.resolve()
        except OSError:
            same = False
        note = " = THE PROCESS BUILD: 'threaded'/'sequential' rows are NOT the threaded build" if same else ""
        return f"# WARNING: threaded build taken from THUMBMILL_THREADED_BIN={path}{note}"
    return None


# ---------------------------------------------------------------- images

def image_files(directory, count=None):
    d = Path(directory).resolve()
    if not d.is_dir():
        die(f"--images {directory}: not a directory")
    files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if count is not None:
        files = files[:count]
    if not files:
        die(f"--images {directory}: no image files ({', '.join(sorted(IMAGE_EXTS))})")
    return d, files


def generated_images(count, megapixels):
    """count deterministic megapixels-MP JPEGs, made once under .bench/images and reused."""
    # make-images is deterministic per index: photo0007 is the same file in a
    # set of 10 and of 200, so the first N of a larger complete set will do.
    suffix = f"x{megapixels:g}mp"
    sets = []
    for c in (BENCH_DIR / "images").glob(f"jpeg-*{suffix}/.complete"):
        k = c.parent.name[len("jpeg-"):-len(suffix)]
        if k.isdigit() and int(k) >= count:
            sets.append((int(k), c.parent))
    if sets:
        return image_files(min(sets)[1], count)
    name = f"jpeg-{count}{suffix}"
    d = BENCH_DIR / "images" / name
    marker = d / ".complete"
    if not marker.exists():
        if not MAKE_IMAGES_BIN.exists():
            die(f"{MAKE_IMAGES_BIN} missing (scripts/setup should have built it)")
        tmp = d.with_name(name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(d, ignore_errors=True)
        log(f"generating {count} × {megapixels:g} MP JPEG in {d.relative_to(ROOT)} (not timed)")
        t = time.monotonic()
        subprocess.run([str(MAKE_IMAGES_BIN), "--out", str(tmp), "--count", str(count),
                        "--megapixels", f"{megapixels:g}", "--format", "jpeg"],
                       check=True, stdout=sys.stderr)
        (tmp / ".complete").write_text(f"{count} {megapixels}\n")
        tmp.rename(d)
        log(f"generated in {time.monotonic() - t:.1f} s")
    return image_files(d)


def describe_images(files):
    total = sum(f.stat().st_size for f in files)
    exts = sorted({f.suffix.lower() for f in files})
    return f"{len(files)} files ({'/'.join(exts)}), {total / 1e6:.1f} MB"


def warm_page_cache(files):
    """Reads every file once, so no contender pays the first disk read."""
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 20):
                pass


def write_lines(path, lines):
    Path(path).write_text("".join(f"{line}\n" for line in lines))
    return Path(path)


# ---------------------------------------------------------------- server

def process_cpu_seconds(pid):
    """User + system CPU seconds process `pid` has used so far (its threads
    included), or nan when it cannot be read."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def stop_process(proc):
    """Stops a child we started (a subprocess.Popen): SIGTERM, SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """scripts/serve DIR on a free loopback port, stopped at exit."""

    def __init__(self, directory, delay_ms=0):
        self.directory = Path(directory)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts/serve"), str(directory), "--port", "0",
             "--quiet", "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, text=True)
        on_exit(self.stop)
        banner = self.proc.stdout.readline().strip()
        if " on " not in banner:
            self.stop()
            die(f"scripts/serve did not start (said {banner!r})")
        self.base = banner.rsplit(" on ", 1)[1]
        log(f"{banner}" + (f" (delay {delay_ms} ms per request)" if delay_ms else ""))

    def urls(self, files):
        return [self.base + urllib.parse.quote(str(f.relative_to(self.directory))) for f in files]

    def cpu_seconds(self):
        """User + system CPU seconds the server has used so far (its threads included)."""
        return process_cpu_seconds(self.proc.pid)

    def stop(self):
        stop_process(self.proc)


# ---------------------------------------------------------------- measuring

@dataclass
class Measurement:
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float      # max over samples of the sum of Rss of all processes
    peak_pss_mb: float      # same with Pss
    max_proc_rss_mb: float  # largest ru_maxrss returned by wait4 (one process)
    processes: int          # distinct processes seen by the sampler or reaped
    samples: int
    exit_status: int
    sampler_cpu_s: float = 0.0  # CPU the runner's sampler used (outside the tree)
    peak_shm_mb: float = 0.0    # largest /dev/shm allocation of the run's queue segments
    pss_reads: int = 0
    log: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def cpu_s(self):
        return self.user_s + self.sys_s


def measure(cmd, log_path, env=None, interval=0.02):
    """Runs cmd under the measuring runner (a separate process), returns a Measurement.

    The command's stdout and stderr go to log_path. Runner start-up is not timed."""
    log_path = Path(log_path)
    result = log_path.with_suffix(".result.json")
    runner = [sys.executable, str(Path(__file__).resolve()), "measure",
              "--interval", str(interval), "--log", str(log_path), "--result", str(result),
              "--"] + [str(c) for c in cmd]
    proc = subprocess.Popen(runner, env=env, cwd=ROOT)
    try:
        rc = proc.wait()
    except BaseException:
        # Interrupted: the runner stops the command's whole tree on SIGTERM.
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    if rc != 0 or not result.exists():
        die(f"measuring runner failed (exit {rc}) for: {shlex.join(map(str, cmd))}")
    d = json.loads(result.read_text())
    return Measurement(log=str(log_path), **d)


def log_tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def count_files(directory):
    """Thumbnails written under `directory`: files whose path has no hidden
    part (not thumbmill's own .thumbmill/ manifest and stem claims, nor a
    temp file)."""
    root = Path(directory)
    return sum(1 for p in root.rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def check_run(name, m, out_dir=None, expected_files=None):
    """Fails loudly when a contender did not do the whole job."""
    if m.exit_status != 0:
        die(f"{name}: exit status {m.exit_status}; last lines of {m.log}:\n{log_tail(m.log)}")
    if out_dir is not None and expected_files is not None:
        n = count_files(out_dir)
        if n != expected_files:
            die(f"{name}: wrote {n} files into {out_dir}, expected {expected_files}; "
                f"log {m.log}:\n{log_tail(m.log)}")


def first_output_ms(cmd, out_dir, timeout_s=60):
    """Milliseconds from starting cmd to the first complete file in out_dir.

    Outputs appear by rename, so the first visible (non-hidden) name is a
    whole thumbnail. Polls every 0.2 ms; waits for cmd to finish."""
    out_dir = Path(out_dir)
    start = time.monotonic()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    while first is None and time.monotonic() - start < timeout_s:
        try:
            if any(not e.name.startswith(".") for e in os.scandir(out_dir)):
                first = (time.monotonic() - start) * 1000
        except FileNotFoundError:
            pass
        if first is None:
            time.sleep(0.0002)
    proc.wait()
    return first


def summary_rows(text, role):
    """Rows of a coordinator summary's process table for `role`, as dicts."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[0] == role and parts[1].isdigit():
            rows.append({"pid": int(parts[1]), "user_s": float(parts[2]), "sys_s": float(parts[3]),
                         "peak_rss_mb": float(parts[4]), "jobs": int(parts[6])})
    return rows


def median_of(ms):
    """Median of each figure over repeated runs (each figure on its own)."""
    if len(ms) == 1:
        return ms[0]
    med = lambda attr: statistics.median(getattr(m, attr) for m in ms)
    return Measurement(
        wall_s=med("wall_s"), user_s=med("user_s"), sys_s=med("sys_s"),
        peak_rss_mb=med("peak_rss_mb"), peak_pss_mb=med("peak_pss_mb"),
        max_proc_rss_mb=med("max_proc_rss_mb"), processes=max(m.processes for m in ms),
        samples=sum(m.samples for m in ms), exit_status=0, log=ms[-1].log,
        sampler_cpu_s=med("sampler_cpu_s"), pss_reads=sum(m.pss_reads for m in ms),
        peak_shm_mb=med("peak_shm_mb"),
        extra={k: statistics.median(m.extra[k] for m in ms) for k in ms[0].extra})


# -- the runner itself (runs in its own process) --

def _children(pid):
    kids = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            pass
    return kids


def _rss_kb(pid, page_kb):
    """Resident pages from /proc/PID/statm (cheap: no page-table walk)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * page_kb
    except (OSError, ValueError, IndexError):
        return 0


def _rss_pss_kb(pid):
    """Rss, and Pss without shared memory (Pss - Pss_Shmem), from
    /proc/PID/smaps_rollup (walks the page tables: ~0.5 ms per process with
    big mappings, hence taken only every --pss-every samples). Shared-memory
    pages are left out because the queue segment is counted whole by
    _shm_kb: the downloader keeps it mapped, so its PSS would count it too."""
    rss = pss = shmem = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Pss_Shmem:"):
                    shmem = int(line.split()[1])
                    break
    except (OSError, ValueError):
        pass
    return rss, pss - shmem


def _shm_kb(pids):
    """KiB allocated in /dev/shm by thumbmill segments of these processes
    (named thumbmill-<creator pid>-<start>): the queue's bodies, whichever
    process maps them (the PSS sum leaves shared memory out)."""
    total = 0
    try:
        for e in os.scandir("/dev/shm"):
            parts = e.name.split("-")
            if len(parts) == 3 and parts[0] == "thumbmill" and parts[1].isdigit() and int(parts[1]) in pids:
                total += e.stat().st_blocks // 2
    except OSError:
        pass
    return total


def _runner(args):
    PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("measure: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)  # the caller died: stop too
    me = os.getpid()

    def stop_tree(signum, _frame):
        """SIGTERM/SIGINT/SIGHUP: stop the command and every descendant, then exit."""
        stack, pids = _children(me), []
        while stack:
            pid = stack.pop()
            pids.append(pid)
            stack.extend(_children(pid))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    time.sleep(0.02)
            except ChildProcessError:
                break
        for pid in _children(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os._exit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop_tree)
    seen = set()
    peak = {"rss": 0, "pss": 0, "samples": 0, "cpu": 0.0, "pss_at_rss": 0, "pss_reads": 0, "shm": 0}
    done = threading.Event()

    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024

    def sample():
        try:
            _sample()
        finally:
            peak["cpu"] = time.thread_time()

    def _sample():
        n = 0
        while not done.is_set():
            rss, pids = 0, []
            stack = _children(me)
            while stack:
                pid = stack.pop()
                pids.append(pid)
                rss += _rss_kb(pid, page_kb)
                stack.extend(_children(pid))
            seen.update(pids)
            # PSS (costly) every Nth sample, and when the RSS sum passes the
            # largest one PSS was read at by more than 5 %.
            if pids and (rss > 1.05 * peak["pss_at_rss"] or n % args.pss_every == 0):
                peak["pss"] = max(peak["pss"], sum(_rss_pss_kb(pid)[1] for pid in pids))
                peak["pss_at_rss"] = max(peak["pss_at_rss"], rss)
                peak["pss_reads"] += 1
            peak["rss"] = max(peak["rss"], rss)
            peak["shm"] = max(peak["shm"], _shm_kb(set(pids)))
            peak["samples"] += 1
            n += 1
            done.wait(args.interval)

    logfd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, logfd, 1),
               (os.POSIX_SPAWN_DUP2, logfd, 2)]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    try:
        pid = os.posix_spawnp(args.cmd[0], args.cmd, os.environ, file_actions=actions)
    except OSError as e:
        done.set()
        os.write(logfd, f"measure: cannot run {args.cmd[0]}: {e}\n".encode())
        _write_result(args.result, dict(
            wall_s=0, user_s=0, sys_s=0, peak_rss_mb=0, peak_pss_mb=0, max_proc_rss_mb=0,
            processes=0, samples=0, exit_status=127, sampler_cpu_s=0, pss_reads=0))
        return 0
    _, status, ru = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    seen.add(pid)
    user, sys_, maxrss = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    # Orphaned descendants were reparented to us: reap them (kill after 10 s).
    deadline = time.monotonic() + 10
    while True:
        try:
            opid, _, oru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if opid == 0:
            if time.monotonic() > deadline:
                for k in _children(me):
                    try:
                        os.kill(k, signal.SIGKILL)
                    except OSError:
                        pass
            time.sleep(0.01)
            continue
        seen.add(opid)
        user += oru.ru_utime
        sys_ += oru.ru_stime
        maxrss = max(maxrss, oru.ru_maxrss)
    done.set()
    sampler.join()
    _write_result(args.result, dict(
        wall_s=wall, user_s=user, sys_s=sys_,
        peak_rss_mb=peak["rss"] / 1024, peak_pss_mb=peak["pss"] / 1024,
        max_proc_rss_mb=maxrss / 1024, processes=len(seen), samples=peak["samples"],
        sampler_cpu_s=peak["cpu"], pss_reads=peak["pss_reads"], peak_shm_mb=peak["shm"] / 1024,
        exit_status=os.waitstatus_to_exitcode(status)))
    return 0


def _write_result(path, d):
    if path == "-":
        print(json.dumps(d), flush=True)
    else:
        Path(path).write_text(json.dumps(d))


# ---------------------------------------------------------------- output

def format_table(headers, rows, right=None):
    """An aligned plain-text table; right: set of column indexes to right-align
    (default: every column but the first)."""
    if right is None:
        right = set(range(1, len(headers)))
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                         for i, c in enumerate(r)).rstrip()
    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def write_csv(path, headers, rows):
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        w.writerows(rows)
    return path


def rel(path):
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv):
    p = argparse.ArgumentParser(prog="benchlib.py",
                                description="measure: run CMD, report wall/CPU/peak memory of its tree")
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--interval", type=float, default=0.02, help="seconds between samples")
    m.add_argument("--pss-every", type=int, default=10, help="read PSS every Nth sample")
    m.add_argument("--log", default=os.devnull)
    m.add_argument("--result", default="-", help="JSON result file (- for stdout)")
    m.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    if a.cmd and a.cmd[0] == "--":
        a.cmd = a.cmd[1:]
    if not a.cmd:
        p.error("measure: no command")
    return _runner(a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
