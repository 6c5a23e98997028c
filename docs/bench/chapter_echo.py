# The chapter's asyncio echo server (section 8.4), as `trident bench chat`
# runs it as a peer: the per-message print removed (it would measure the
# terminal), and the port taken from the command line. Otherwise unchanged.
#   trident bench chat --parts echo --peer 'chapter=python3 docs/bench/chapter_echo.py {port}'
import asyncio
import sys


async def handle_client(reader, writer):
    addr = writer.get_extra_info('peername')
    print(f"Accepted connection from {addr}")
    try:
        while True:
            data = await reader.read(100)  # Read up to 100 bytes
            if not data:
                break
            message = data.decode()
            response = f"Server received: {message}".encode()
            writer.write(response)
            await writer.drain()
    except ConnectionResetError:
        print(f"Client {addr} disconnected abruptly")
    except Exception as e:
        print(f"Error handling client {addr}: {e}")
    finally:
        print(f"Closing connection from {addr}")
        writer.close()
        await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle_client, '127.0.0.1', int(sys.argv[1]))
    addrs = ', '.join(str(sock.getsockname()) for sock in server.sockets)
    print(f"Serving on {addrs}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("Server shutting down.")
