#!/usr/bin/env python3
"""The chapter's asyncio port scanner (Project 8.3), as a bench contender.

A coroutine per port, all gathered at once on one event loop; each opens a
connection (asyncio.open_connection) and prints "Port N: Open" if it
succeeds; a refusal or any other socket error counts as closed. As in the
chapter there is no timeout: a port whose SYNs are dropped (filtered) keeps
its connect waiting until the kernel gives up (about two minutes on Linux),
and the whole scan with it.

--timeout S is the smallest fix, and a change from the chapter: each
connect is given up after S seconds (asyncio.wait_for), as the threaded
and multiprocessing scanners do with their socket timeout.

Under load that fix has a cost of its own: the timeout starts when a
probe is created, and gathering tens of thousands of probes keeps the loop
busy for longer than a second before their connects are even seen, so the
probes time out unanswered and open ports go unreported. Without it, the
sockets of all the probes are open at once, and those past the limit of
open files fail (EMFILE) and count as closed, as the chapter counts any
socket error.

The chapter's listing itself is not quite this: it calls loop.sock_connect
on a socket given settimeout(1). asyncio wants non-blocking sockets (its
debug mode refuses that one); on a socket with a timeout the connect
blocks the whole event loop, for up to a second per filtered port, one
port after another. This program follows what the chapter says its
scanner does: a connection opened per port, all gathered, no timeout.

Usage: scan_asyncio.py TARGET PORTS [--timeout S]
"""
import asyncio
import time

from scan_common import arguments, report_open, report_time


async def probe(target, port, timeout):
    try:
        connecting = asyncio.open_connection(target, port)
        if timeout is None:
            _, writer = await connecting
        else:
            _, writer = await asyncio.wait_for(connecting, timeout)
    except (OSError, asyncio.TimeoutError):
        return
    report_open(port)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def scan(target, ports, timeout):
    await asyncio.gather(*(probe(target, port, timeout) for port in ports))


def main():
    args = arguments("The chapter's asyncio port scanner.", timeout=None)
    started = time.time()
    asyncio.run(scan(args.target, args.ports, args.timeout))
    report_time("AsyncIO Port Scan", started)


if __name__ == "__main__":
    main()
