#!/usr/bin/python3
"""sequential: the seed's starting point, no concurrency at all.

    scripts/seed/sequential.py [--out DIR] LIST

Downloads every image (urllib, one at a time) into the incoming directory,
then resizes every one of them, in one thread of one process. While an image
downloads the CPU waits; while one resizes the network waits. The other
models remove one of these waits each.
"""

import sys

sys.dont_write_bytecode = True
import thumbnail_maker as tm  # noqa: E402

PROG = "seed/sequential"


def make_thumbnails(service, sources):
    outcomes, downloaded = [], []
    for source in sources:                      # 1. every download ...
        try:
            service.download_image(source)
            downloaded.append(source)
        except Exception as e:
            outcomes.append((source, tm.describe(e)))
    for source in downloaded:                   # 2. ... then every resize
        try:
            service.resize_image(source)
            outcomes.append((source, None))
        except Exception as e:
            outcomes.append((source, tm.describe(e)))
    return outcomes


if __name__ == "__main__":
    args = tm.parse_args(PROG, "Thumbnail Maker, sequential: download all, then resize all")
    sys.exit(tm.run(PROG, args, make_thumbnails))
