#!/usr/bin/python3
"""processes: the Thumbnail Maker with a process pool fed by a queue.

    scripts/seed/processes.py [--workers N] [--downloads D] [--out DIR] LIST

The seed's last multiprocessing step: downloading is I/O-bound, so threads
do it (D of them, in the main process); resizing is CPU-bound, so N
processes do it, each with its own interpreter and GIL. A downloaded file's
name goes onto a multiprocessing queue; every resize process takes names
off it until it takes None, the "poison pill" put once per process after the
last download. Results come back on a second queue. Only names travel
between processes: the images themselves wait on disk in the incoming
directory (pickling 4 MB bodies through a pipe would cost more).

This is the shape of thumbmill's process build (one downloader, N workers,
a queue between them), with Python's interpreter in every worker.
"""

import multiprocessing
import queue
import sys
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True
import thumbnail_maker as tm  # noqa: E402

PROG = "seed/processes"


def resize_worker(service, image_queue, result_queue):
    """Body of each resize process: take, resize, report, until None."""
    while (source := image_queue.get()) is not None:
        try:
            service.resize_image(source)
            result_queue.put((source, None))
        except Exception as e:
            result_queue.put((source, tm.describe(e)))


def make_thumbnails(service, sources, workers, downloads):
    # fork, and before any thread exists: each child starts as a copy of a
    # single-threaded process, with Pillow already imported.
    mp = multiprocessing.get_context("fork")
    image_queue, result_queue = mp.Queue(), mp.Queue()
    pool = [mp.Process(target=resize_worker, args=(service, image_queue, result_queue),
                       name=f"resizer-{i + 1}") for i in range(workers)]
    for p in pool:
        p.start()

    def download(source):
        try:
            service.download_image(source)
            image_queue.put(source)       # a resizer may start on it at once
            return source, None
        except Exception as e:
            return source, tm.describe(e)

    with ThreadPoolExecutor(max_workers=downloads, thread_name_prefix="downloader") as threads:
        download_outcomes = list(threads.map(download, sources))
    for _ in pool:
        image_queue.put(None)

    outcomes = [o for o in download_outcomes if o[1] is not None]
    waiting = {s for s, error in download_outcomes if error is None}
    # Drain the results before joining (a child does not exit while its
    # results are still in the pipe), and stop waiting if every resize
    # process has died (killed, out of memory) with sources left over.
    while waiting:
        try:
            source, error = result_queue.get(timeout=1)
        except queue.Empty:
            if not any(p.is_alive() for p in pool):
                outcomes += [(s, "resize process died") for s in waiting]
                break
            continue
        waiting.discard(source)
        outcomes.append((source, error))
    for p in pool:
        p.join()
    return outcomes


if __name__ == "__main__":
    args = tm.parse_args(PROG, "Thumbnail Maker, download threads + a pool of resize processes",
                         workers=(4, "resize processes (default 4)"),
                         downloads=(8, "download threads (default 8)"))
    sys.exit(tm.run(PROG, args, lambda service, sources:
                    make_thumbnails(service, sources, args.workers, args.downloads)))
