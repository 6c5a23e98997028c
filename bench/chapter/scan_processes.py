#!/usr/bin/env python3
"""The chapter's multiprocessing port scanner (Project 8.2), as a bench
contender: a process pool mapping a probe over the ports.

Each probe connects with a fixed timeout (1 s by default, as the chapter's)
and returns whether the connect succeeded; a refusal, a timeout or any
other socket error counts as closed or filtered. The pool has a worker per
core, multiprocessing's default (--workers to change it). The parent prints
the open ports when the map is done: a pool's workers are terminated when
it closes, and whatever they had buffered would be lost.

The chapter's Project 8.2 listing starts a multiprocessing.Process per port
instead; over thousands of ports that is thousands of interpreters at once.
The pool (the chapter's section 8.3) keeps its approach, processes doing
the probes, within what a machine survives.

Usage: scan_processes.py TARGET PORTS [--timeout S] [--workers N]
"""
import multiprocessing
import socket
import time

from scan_common import arguments, report_open, report_time


def probe(job):
    target, port, timeout = job
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect((target, port))
        return True
    except OSError:  # socket.timeout and socket.error alike
        return False
    finally:
        conn.close()


def main():
    args = arguments(
        "The chapter's multiprocessing port scanner.",
        timeout=1.0,
        extra=lambda p: p.add_argument("--workers", type=int, default=None, help="pool size (default: cores)"),
    )
    started = time.time()
    jobs = [(args.target, port, args.timeout) for port in args.ports]
    with multiprocessing.Pool(processes=args.workers) as pool:
        answers = pool.map(probe, jobs)
    for port, is_open in zip(args.ports, answers):
        if is_open:
            report_open(port)
    report_time("Multi-Process Port Scan", started)


if __name__ == "__main__":
    main()
