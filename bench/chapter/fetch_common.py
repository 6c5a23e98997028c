"""What the chapter's two downloaders share: the command line (URLs, or a
file of them, and the download directory) and where a URL's file goes.

The chapter's downloaders had three URLs and the directory written into the
code; here they are parameters, so that a bench points them at its own
server and corpus.
"""
import argparse
import os


def arguments(description, default_dir):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("urls", nargs="*", help="URLs to download")
    parser.add_argument("-i", "--input", help="a file of URLs, one a line")
    parser.add_argument("-d", "--dir", default=default_dir, help=f"download directory (default {default_dir})")
    args = parser.parse_args()
    if args.input:
        with open(args.input, encoding="utf-8") as listing:
            args.urls += [line.strip() for line in listing if line.strip()]
    if not args.urls:
        parser.error("no URL given")
    os.makedirs(args.dir, exist_ok=True)
    return args


def target_path(directory, url):
    """The chapter's naming: the last segment of the URL's path."""
    return os.path.join(directory, url.split("/")[-1])
