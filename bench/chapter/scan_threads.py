#!/usr/bin/env python3
"""The chapter's threaded port scanner (Project 8.1), as a bench contender.

A thread per port, every one started before any is joined. Each thread
connects with a fixed timeout (1 s by default, as the chapter's) and prints
"Port N: Open" if the connect succeeds; a refusal, a timeout or any other
socket error counts as closed or filtered.

Usage: scan_threads.py TARGET PORTS [--timeout S]
"""
import socket
import threading
import time

from scan_common import arguments, report_open, report_time


def probe(target, port, timeout):
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect((target, port))
        report_open(port)
    except OSError:  # socket.timeout and socket.error alike
        pass
    finally:
        conn.close()


def main():
    args = arguments("The chapter's threaded port scanner.", timeout=1.0)
    started = time.time()
    workers = [threading.Thread(target=probe, args=(args.target, port, args.timeout)) for port in args.ports]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report_time("Threaded Port Scan", started)


if __name__ == "__main__":
    main()
