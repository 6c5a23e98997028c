"""What the chapter's three port scanners share, apart from how they run
their probes: the command line (target, ports, connect timeout) and the
report (a line per open port, then the time taken).

The chapter's scanners had the target and the ports written into the code
(scanme.nmap.org, ports 1-100); here they are parameters, so that a bench
points them at its own target.
"""
import argparse
import time


def parse_ports(text):
    """'1-100', '22,80,8000-8100' -> the ports, in order."""
    ports = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        first, last = int(low), int(high or low)
        if not 1 <= first <= last <= 65535:
            raise argparse.ArgumentTypeError(f"bad port range {part!r}")
        ports.extend(range(first, last + 1))
    return ports


def arguments(description, timeout, extra=None):
    """TARGET PORTS [--timeout S]: `timeout` is the default (None: none)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("target", help="host name or IPv4 address")
    parser.add_argument("ports", type=parse_ports, help="e.g. 1-100 or 22,80,8000-8100")
    parser.add_argument("--timeout", type=float, default=timeout, help="connect timeout, seconds")
    if extra:
        extra(parser)
    return parser.parse_args()


def report_open(port):
    """One whole line per write, so that lines printed by concurrent
    threads never interleave."""
    print(f"Port {port}: Open\n", end="")


def report_time(what, started):
    print(f"{what} completed in {time.time() - started:.2f} seconds")
