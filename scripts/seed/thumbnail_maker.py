"""thumbnail_maker: the Python "Thumbnail Maker" of the seed, shared by its four models.

thumbmill grew out of a course on concurrency in Python built around one demo
(/work/shared/seeds, github.com/tim-ojo/python-concurrency-getting-started):
a ThumbnailMakerService downloads images into an "incoming" directory, then
resizes each to a few widths, keeping the aspect ratio, into an output
directory. The course makes it concurrent step by step. Each step is one
small program beside this module, so that scripts/compare can run them on
the same URLs as thumbmill and measure what each model costs:

    sequential.py   download every image, then resize every image
    threads.py      a thread pool: each task downloads one image and resizes it
    processes.py    download threads feed a multiprocessing queue; a pool of
                    resize processes empties it
    asyncio_aiohttp.py
                    one asyncio loop downloads with aiohttp, many in flight;
                    the resizing then runs in the same thread

What this module fixes, so that the four do the same work as thumbmill's
defaults: widths 32, 64 and 200 (never enlarged), Pillow's resize with
LANCZOS from the full decoded image (as the seed does; no draft mode, so no
JPEG shrink-on-load), JPEG quality 85, no metadata kept, output names
<stem>_<width>.<ext> like thumbmill's (a second source with the same stem
gets -<8 hex of its URL's hash>), each file written under a hidden name and
renamed into place. A failed source does not stop the batch: it is reported
on stderr and the program exits 1 at the end.

Only loopback sources: every URL must be http://127.0.0.1[:port]/..., no
proxy from the environment is used and no redirect is followed, so no
connection leaves the machine.
"""

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

SIZES = (32, 64, 200)   # thumbmill's default --sizes
QUALITY = 85            # thumbmill's default --quality
LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
ALLOWED_HOST = "127.0.0.1"



class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could point off the machine: none is followed (a 3xx
    answer fails the source), here and in asyncio_aiohttp.py."""

    def redirect_request(self, *args, **kwargs):
        return None


# urllib honours http_proxy and friends by default; an empty ProxyHandler
# means every request goes straight to 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


@dataclass(frozen=True)
class Source:
    """One line of the list: its URL and the names chosen for it up front."""
    url: str
    stem: str   # unique in this run
    ext: str    # ".jpg", ".png", ... (lower case)


def check_loopback(url):
    """Raises ValueError unless url is http://127.0.0.1[:port]/..."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname != ALLOWED_HOST:
        raise ValueError(f"only http://{ALLOWED_HOST}/ URLs are allowed here: {url}")


def plan_sources(urls):
    """Names every URL once, deterministically: <stem> from the last path
    segment (reduced to [A-Za-z0-9._-]); a repeated stem gets -<8 hex>."""
    sources, seen = [], set()
    for url in urls:
        last = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
        stem, ext = os.path.splitext(last)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".") or "image"
        ext = ext.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", ext) else ".jpg"
        if stem in seen:
            stem += "-" + hashlib.sha1(url.encode()).hexdigest()[:8]
        seen.add(stem)
        sources.append(Source(url, stem, ext))
    return sources


def read_url_list(path):
    """URLs of a list file ('-': stdin); blank lines and # comments skipped."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    urls = [line.strip() for line in text.splitlines()]
    urls = [u for u in urls if u and not u.startswith("#")]
    for u in urls:
        check_loopback(u)
    return urls


class ThumbnailMakerService:
    """Downloads into input_dir, resizes into output_dir (the seed's class).

    Holds only paths and settings, so a copy of it can travel to a worker
    process (processes.py)."""

    def __init__(self, output_dir, input_dir, sizes=SIZES, quality=QUALITY):
        self.output_dir = Path(output_dir)
        self.input_dir = Path(input_dir)
        self.sizes = tuple(sizes)
        self.quality = quality
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.input_dir.mkdir(parents=True, exist_ok=True)

    def incoming_path(self, source):
        return self.input_dir / (source.stem + source.ext)

    def download_image(self, source):
        """Blocking download (urllib) of one source into input_dir."""
        check_loopback(source.url)
        path = self.incoming_path(source)
        with _opener.open(source.url, timeout=60) as response, open(path, "wb") as f:
            while chunk := response.read(1 << 16):
                f.write(chunk)
        return path

    def save_download(self, source, body):
        """Writes a body downloaded elsewhere (asyncio) into input_dir."""
        path = self.incoming_path(source)
        path.write_bytes(body)
        return path

    def resize_image(self, source):
        """Resizes the downloaded original to every width, then deletes it.
        Returns the number of thumbnails written."""
        path = self.incoming_path(source)
        try:
            with Image.open(path) as original:
                for width in self.sizes:
                    self._write_thumbnail(source, original, width)
        finally:
            path.unlink(missing_ok=True)
        return len(self.sizes)

    def _write_thumbnail(self, source, original, width):
        # Keep the aspect ratio; never enlarge (thumbmill's default): the
        # name says the width asked for, the file has what the source had.
        w = min(width, original.width)
        h = max(1, round(original.height * w / original.width))
        thumb = original.resize((w, h), LANCZOS)
        if source.ext in (".jpg", ".jpeg") and thumb.mode not in ("RGB", "L"):
            thumb = thumb.convert("RGB")
        final = self.output_dir / f"{source.stem}_{width}{source.ext}"
        tmp = self.output_dir / f".{final.name}.tmp.{os.getpid()}"
        # No exif=/icc_profile= arguments: metadata is dropped, as thumbmill does.
        thumb.save(tmp, format=Image.registered_extensions().get(source.ext, "JPEG"),
                   quality=self.quality)
        os.replace(tmp, final)


# ---------------------------------------------------------------- the programs' common shell

def parse_args(prog, description, workers=None, downloads=None):
    """Options every model takes; workers/downloads: (default, help) or None."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("list", metavar="LIST", help="file of http://127.0.0.1/... URLs, one a line ('-': stdin)")
    p.add_argument("--out", default="thumbnails", help="output directory (default ./thumbnails)")
    p.add_argument("--incoming", metavar="DIR",
                   help="where downloads wait for the resize (default: a temporary directory)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="widths, comma separated (default 32,64,200)")
    p.add_argument("--quality", type=int, default=QUALITY, help="JPEG quality (default 85)")
    if workers:
        p.add_argument("--workers", type=int, default=workers[0], help=workers[1])
    if downloads:
        p.add_argument("--downloads", type=int, default=downloads[0], help=downloads[1])
    p.add_argument("-q", "--quiet", action="store_true", help="only failures and errors")
    a = p.parse_args()
    try:
        a.sizes = tuple(int(s) for s in a.sizes.split(","))
    except ValueError:
        p.error(f"--sizes {a.sizes}: expected widths like 32,64,200")
    if not a.sizes or min(a.sizes) < 1 or not 1 <= a.quality <= 100:
        p.error("--sizes must be positive widths, --quality in 1..100")
    for name in ("workers", "downloads"):
        if getattr(a, name, 1) < 1:
            p.error(f"--{name} must be >= 1")
    try:
        a.sources = plan_sources(read_url_list(a.list))
    except (OSError, ValueError) as e:
        p.error(str(e))
    return a


def run(prog, args, make_thumbnails):
    """Builds the service, times make_thumbnails(service, sources) -> list of
    (source, error or None), prints the failures and a summary on stderr, and
    returns the exit status (1 if any source failed)."""
    with tempfile.TemporaryDirectory(prefix="thumbnail-maker-") as scratch:
        service = ThumbnailMakerService(args.out, args.incoming or scratch, args.sizes, args.quality)
        start = time.perf_counter()
        outcomes = make_thumbnails(service, args.sources)
        elapsed = time.perf_counter() - start
    failed = [(s, e) for s, e in outcomes if e is not None]
    for source, error in failed:
        print(f"{prog}: failed: {error}: {source.url}", file=sys.stderr)
    if not args.quiet or failed:
        ok = len(outcomes) - len(failed)
        print(f"{prog}: {len(args.sources)} sources, {ok} ok, {len(failed)} failed, "
              f"{ok * len(args.sizes)} thumbnails in {args.out}, {elapsed:.2f} s", file=sys.stderr)
    return 1 if failed or len(outcomes) != len(args.sources) else 0


def describe(error):
    """One line for a failed source."""
    return f"{type(error).__name__}: {error}"
