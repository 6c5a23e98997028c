#!/usr/bin/env python3
"""The chapter's asyncio downloader (section 8.2, integrated with threads),
as a bench contender.

One aiohttp session (its connection pool reused by every download) and a
coroutine per URL, all gathered; each streams its response in 8 KiB chunks
and hands every write of a chunk to the loop's default thread pool
(run_in_executor), so that the event loop never waits on the disk. A
progress counter shared under a threading.Lock is logged as files finish.
As in the chapter, the event loop runs in a thread of its own, which the
main thread joins. An HTTP error or a network error is logged and the file
skipped; the program still ends with status 0, as the chapter's does.

Needs aiohttp (Debian: python3-aiohttp, which scripts/test installs).

Usage: fetch_asyncio.py [URL...] [-i FILE] [-d DIR]
"""
import asyncio
import logging
import threading
import time

import aiohttp

from fetch_common import arguments, target_path

CHUNK = 8192


class Progress:
    """Files done so far; a lock, as the chapter's, though only the event
    loop's thread counts."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def one_more(self, path):
        logging.info(f"Downloaded {path}")
        with self.lock:
            self.done += 1
            logging.info(f"Progress: {self.done}/{self.total} files downloaded")


async def download(session, url, directory, progress):
    path = target_path(directory, url)
    loop = asyncio.get_running_loop()
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            with open(path, "wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    await loop.run_in_executor(None, out.write, chunk)
    except aiohttp.ClientError as error:
        logging.error(f"Error downloading {url}: {error}")
        return
    except Exception:
        logging.exception(f"Unexpected error downloading {url}")
        return
    progress.one_more(path)


async def download_all(urls, directory):
    started = time.time()
    progress = Progress(len(urls))
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(download(session, url, directory, progress) for url in urls))
    logging.info(f"Downloaded all files in {time.time() - started:.2f} seconds (AsyncIO)")


def run_loop(urls, directory):
    """The event loop, in the thread that calls this."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(download_all(urls, directory))
    except Exception as error:
        logging.error(f"Error in the asyncio thread: {error}")
    finally:
        loop.close()


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(levelname)s - %(message)s")
    args = arguments("The chapter's asyncio downloader.", "downloaded_files_async")
    loop_thread = threading.Thread(target=run_loop, args=(args.urls, args.dir))
    loop_thread.start()
    loop_thread.join()
    logging.info("Finished downloading all files.")


if __name__ == "__main__":
    main()
