#!/usr/bin/python3
"""threads: the Thumbnail Maker with a thread pool.

    scripts/seed/threads.py [--workers N] [--out DIR] LIST

concurrent.futures.ThreadPoolExecutor with N threads; each task downloads one
image (urllib) and resizes it. While one thread waits for the network
another can resize. CPython's GIL lets only one thread run Python code at a
time, but Pillow releases it while it decodes, resizes and encodes, so the
C parts of N resizes can run on N cores; the Python between them cannot.

The seed's first threaded step had download threads put file names on a
queue.Queue for one resizing thread. Here the pool does both, so --workers
means what thumbmill-threaded's --workers means: N images in progress.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True
import thumbnail_maker as tm  # noqa: E402

PROG = "seed/threads"


def make_thumbnails(service, sources, workers):
    def make_one(source):
        try:
            service.download_image(source)
            service.resize_image(source)
            return source, None
        except Exception as e:
            return source, tm.describe(e)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnailer") as pool:
        return list(pool.map(make_one, sources))


if __name__ == "__main__":
    args = tm.parse_args(PROG, "Thumbnail Maker, a thread pool: download + resize per task",
                         workers=(4, "threads in the pool (default 4)"))
    sys.exit(tm.run(PROG, args, lambda service, sources: make_thumbnails(service, sources, args.workers)))
