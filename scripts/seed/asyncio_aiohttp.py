#!/usr/bin/python3
"""asyncio_aiohttp: the Thumbnail Maker on one asyncio event loop.

    scripts/seed/asyncio_aiohttp.py [--downloads D] [--out DIR] LIST

The seed's asyncio step: one thread, one event loop, aiohttp downloads with
up to D requests in flight (a semaphore), each body written to the incoming
directory; then the same thread resizes every image. asyncio overlaps
waiting, not computing: the downloads take little more than the slowest of
them, the resizing takes as long as in sequential.py. (Resizing inside the
loop as each body arrives would stall every download in flight meanwhile.)
"""

import asyncio
import sys

sys.dont_write_bytecode = True
import aiohttp  # noqa: E402

import thumbnail_maker as tm  # noqa: E402

PROG = "seed/asyncio_aiohttp"


async def download_all(service, sources, downloads):
    in_flight = asyncio.Semaphore(downloads)

    async def download(session, source):
        async with in_flight:
            try:
                tm.check_loopback(source.url)
                async with session.get(source.url, allow_redirects=False) as response:
                    response.raise_for_status()
                    if response.status != 200:  # a redirect: not followed
                        raise ValueError(f"HTTP {response.status}, not followed")
                    service.save_download(source, await response.read())
                return source, None
            except Exception as e:
                return source, tm.describe(e)

    # trust_env=False (the default): no proxy from the environment.
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await asyncio.gather(*(download(session, s) for s in sources))


def make_thumbnails(service, sources, downloads):
    outcomes = []
    for source, error in asyncio.run(download_all(service, sources, downloads)):
        if error is None:
            try:
                service.resize_image(source)
            except Exception as e:
                error = tm.describe(e)
        outcomes.append((source, error))
    return outcomes


if __name__ == "__main__":
    args = tm.parse_args(PROG, "Thumbnail Maker, asyncio + aiohttp downloads, then resizing",
                         downloads=(8, "downloads in flight (default 8)"))
    sys.exit(tm.run(PROG, args, lambda service, sources:
                    make_thumbnails(service, sources, args.downloads)))
