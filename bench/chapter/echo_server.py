#!/usr/bin/env python3
"""The chapter's asyncio echo server (section 8.4), as a bench contender.

One coroutine per connection on asyncio's streams: it reads at most 100
bytes at a time and answers each read with "Server received: " and the text
read, waiting for the answer to drain before the next read. It logs each
connection, each message and each close on stdout as the chapter's server
does, and prints "Server shutting down." on Ctrl-C. --quiet leaves out the
line per message only, as `trident echo serve -q` does: the echo bench runs
both that way, so that neither pays for a log the other does not write.

Usage: echo_server.py [PORT] [--host HOST] [--quiet]   (defaults: 8888,
127.0.0.1; port 0 picks a free one and the "Serving on" line tells which)
"""
import argparse
import asyncio


LOG_MESSAGES = True


async def serve_client(reader, writer):
    peer = writer.get_extra_info("peername")
    print(f"Accepted connection from {peer}")
    try:
        while True:
            chunk = await reader.read(100)
            if not chunk:
                break
            text = chunk.decode()
            if LOG_MESSAGES:
                print(f"Received {text!r} from {peer}")
            writer.write(f"Server received: {text}".encode())
            await writer.drain()
    except ConnectionResetError:
        print(f"Client {peer} disconnected abruptly")
    except Exception as error:  # the chapter logs anything else and closes
        print(f"Error handling client {peer}: {error}")
    finally:
        print(f"Closing connection from {peer}")
        writer.close()
        await writer.wait_closed()


async def serve(host, port):
    server = await asyncio.start_server(serve_client, host, port)
    where = ", ".join(str(s.getsockname()) for s in server.sockets)
    print(f"Serving on {where}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description="The chapter's asyncio echo server.")
    parser.add_argument("port", nargs="?", type=int, default=8888)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--quiet", action="store_true", help="no line per message")
    args = parser.parse_args()
    global LOG_MESSAGES
    LOG_MESSAGES = not args.quiet
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        print("Server shutting down.")


if __name__ == "__main__":
    main()
