"""s3lib: the loopback S3 pieces scripts/bench and scripts/s3-overlap share
(Python 3, stdlib only; uses benchlib for logging and cleanup).

- S3Server: @20minutes/s3rver (tests/s3rver/serve.js) on 127.0.0.1, an
  ephemeral port, its data in a directory of the caller's; stopped at exit.
- S3Proxy: scripts/s3-proxy --delay-ms N in front of a server.
- env(): the environment the coordinator gets: s3rver's fixed keys, the
  endpoint, and none of the caller's own AWS settings (a profile, token or
  endpoint of the user's must never send a benchmark anywhere but loopback).
- curl_transfers(): many GETs or PUTs, N at a time, signed by curl's
  --aws-sigv4 with UNSIGNED-PAYLOAD (which s3rver accepts); the key goes in
  curl's config file, not in argv.
- run_summary(): the coordinator's summary figures from its stderr.
"""

import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import benchlib as bl

SERVE_JS = bl.ROOT / "tests/s3rver/serve.js"
KEY = SECRET = "S3RVER"
REGION = "us-east-1"


def missing():
    """None when s3rver can run here, else why not (for a 'skipped' note)."""
    if not shutil.which("node"):
        return "node is not installed (scripts/setup installs it)"
    if not (bl.ROOT / "tests/s3rver/node_modules/@20minutes/s3rver").is_dir():
        return "tests/s3rver/node_modules is missing (scripts/setup runs npm ci there)"
    return None




class _Child:
    """A helper process that prints one line when it listens; stopped at exit."""

    def __init__(self, argv, what):
        self.what = what
        self.proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, text=True)
        bl.on_exit(self.stop)
        self.banner = self.proc.stdout.readline().strip()  # an event: the line, or EOF when it died

    def cpu_seconds(self):
        """User + system CPU seconds it has used so far."""
        return bl.process_cpu_seconds(self.proc.pid)

    def stop(self):
        bl.stop_process(self.proc)


class S3Server(_Child):
    def __init__(self, directory, buckets):
        Path(directory).mkdir(parents=True, exist_ok=True)
        super().__init__(["node", "--openssl-legacy-provider", SERVE_JS, "0", directory, *buckets], "s3rver")
        m = re.fullmatch(r"ready (\d+)", self.banner)
        if not m:
            self.stop()
            bl.die(f"s3rver did not start (said {self.banner!r})")
        self.endpoint = f"http://127.0.0.1:{m.group(1)}"
        bl.log(f"s3rver on {self.endpoint}, buckets {', '.join(buckets)}, data in {bl.rel(directory)}")


class S3Proxy(_Child):
    def __init__(self, upstream, delay_ms):
        super().__init__([bl.ROOT / "scripts/s3-proxy", "--upstream", upstream, "--delay-ms", delay_ms,
                          "--quiet"], "s3-proxy")
        if not self.banner.startswith("listening on 127.0.0.1:"):
            self.stop()
            bl.die(f"scripts/s3-proxy did not start (said {self.banner!r})")
        self.endpoint = "http://" + self.banner[len("listening on "):]
        bl.log(f"s3-proxy on {self.endpoint} in front of {upstream}, {delay_ms} ms per request and per response")


def env(endpoint):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    e.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=REGION,
             AWS_ENDPOINT_URL=endpoint, AWS_SHARED_CREDENTIALS_FILE="/nonexistent/credentials",
             AWS_CONFIG_FILE="/nonexistent/config")
    return e


def object_url(endpoint, bucket, key):
    """Path-style URL; the key percent-encoded as SigV4 signs it."""
    return f"{endpoint}/{bucket}/{urllib.parse.quote(key, safe='/-_.~')}"


def curl_config(path, transfers):
    """A curl config for transfers: (url, local file to PUT or None for a GET,
    where a GET's body goes)."""
    lines = [f'user = "{KEY}:{SECRET}"']
    for url, upload, output in transfers:
        if upload is not None:
            lines.append(f'upload-file = "{upload}"')
        lines += [f'url = "{url}"', f'output = "{output}"']
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def curl_command(config, parallel=16):
    """curl running every transfer of config, `parallel` at a time."""
    return ["curl", "--no-progress-meter", "--fail", "--parallel", "--parallel-immediate", "--parallel-max", str(parallel),
            "--aws-sigv4", f"aws:amz:{REGION}:s3", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "-K", str(config)]


def put_files(endpoint, bucket, prefix, files, base, tmp, parallel=16):
    """PUTs each file under bucket/prefix + its path relative to base (not timed)."""
    cfg = curl_config(Path(tmp) / "put.curl", [
        (object_url(endpoint, bucket, prefix + str(Path(f).relative_to(base))), f, "/dev/null") for f in files])
    r = subprocess.run(curl_command(cfg, parallel), capture_output=True, text=True)
    if r.returncode != 0:
        bl.die(f"putting {len(files)} files into s3://{bucket}/{prefix} failed: {r.stderr.strip()[-300:]}")


def run_summary(text):
    """Figures of a coordinator summary: ok, failed, thumbnails, and (when an
    uploader ran) upload_cpu_ms per thumbnail and upload_rss_mb."""
    out = {}
    m = re.search(r"^images\s+(\d+) ok, (\d+) failed", text, re.M)
    if m:
        out["ok"], out["failed"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"^thumbnails\s+(\d+) written", text, re.M)
    if m:
        out["thumbnails"] = int(m.group(1))
    m = re.search(r"^uploads\s+([\d.]+) ms CPU per thumbnail, peak RSS ([\d.]+) MB", text, re.M)
    if m:
        out["upload_cpu_ms"], out["upload_rss_mb"] = float(m.group(1)), float(m.group(2))
    return out


def check_all_ok(name, m, sources):
    """Fails loudly unless the run's summary says every source is ok."""
    s = run_summary(bl.log_tail(m.log, 200))
    if m.exit_status != 0 or s.get("ok") != sources or s.get("failed") != 0:
        bl.die(f"{name}: exit {m.exit_status}, summary {s}, expected {sources} ok; "
               f"log {m.log}:\n{bl.log_tail(m.log)}")
    return s
