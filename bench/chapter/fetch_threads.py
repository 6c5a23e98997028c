#!/usr/bin/env python3
"""The chapter's threaded downloader (section 8.2), as a bench contender.

A thread per URL, every one started before any is joined. Each streams its
response into the file named after the URL's last path segment, 8 KiB at a
time, and then counts itself in a progress counter shared by all threads
under a lock. An HTTP error or a network error is printed and the file
skipped; the program still ends with status 0, as the chapter's does.

The chapter used requests.get(url, stream=True) (a new connection per
URL); urllib.request from the standard library does the same here, so the
program needs nothing but python3.

Usage: fetch_threads.py [URL...] [-i FILE] [-d DIR]
"""
import threading
import time
import urllib.error
import urllib.request

from fetch_common import arguments, target_path

CHUNK = 8192


class Progress:
    """Files done so far, shared by every download thread."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.lock = threading.Lock()

    def one_more(self, path):
        with self.lock:
            self.done += 1
            print(f"Downloaded {path}\nProgress: {self.done}/{self.total} files downloaded\n", end="")


def download(url, directory, progress):
    path = target_path(directory, url)
    try:
        with urllib.request.urlopen(url) as response, open(path, "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as error:  # HTTPError (4xx, 5xx) is a URLError
        print(f"Error downloading {url}: {error}\n", end="")
        return
    progress.one_more(path)


def main():
    args = arguments("The chapter's threaded downloader.", "downloaded_files_threads")
    started = time.time()
    progress = Progress(len(args.urls))
    workers = [threading.Thread(target=download, args=(url, args.dir, progress)) for url in args.urls]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(f"Downloaded all files in {time.time() - started:.2f} seconds (Threads)")


if __name__ == "__main__":
    main()
