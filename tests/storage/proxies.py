"""A TCP proxy in front of a test S3 server that drops one request header, as some S3-compatible servers
and gateways ignore conditional headers (If-Match, If-None-Match)."""

from __future__ import annotations

import asyncio
import threading


class HeaderStripper:
    """Forwards every connection to 127.0.0.1:`upstream_port`, removing request header lines that start
    with `header` (lower case, with its colon); `port` is where it listens."""

    def __init__(self, upstream_port: int, header: bytes):
        self.upstream_port, self.header = upstream_port, header.lower()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe(source, sink, strip):
            try:
                while data := await source.read(1 << 16):
                    if strip:
                        data = b"".join(line for line in data.splitlines(keepends=True)
                                        if not line.lower().startswith(self.header))
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
