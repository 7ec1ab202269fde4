"""A moto S3 server behind an asyncio proxy that adds latency per request and counts what a storage bill
counts: requests, and bytes the server sends back, per client (the driver on one port, Ray's workers and
tasks on another) and per kind of object (the videos, under `videos/`, and everything else).

Runs in a process of its own (`start()`), so the benchmark's driver RSS is its own. A response is charged
to the request before it on the same connection (HTTP/1.1 answers in order).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

PROXY = r'''
import asyncio, json, logging, os, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
_, moto_port = server.get_host_and_port()
latency, counts_file = float(sys.argv[1]), sys.argv[2]
counts = {who: {kind: {"requests": 0, "bytes_down": 0} for kind in ("video", "other")} for who in ("workers", "driver")}
METHODS = (b"GET ", b"PUT ", b"HEAD", b"POST", b"DELE")

def kind_of(data):
    line = data.split(b"\r\n", 1)[0].split(b" ")
    path = line[1].decode(errors="replace") if len(line) > 1 else ""
    key = path.split("?", 1)[0].lstrip("/").split("/", 1)[-1]
    return "video" if key.startswith("videos/") and line[0] in (b"GET", b"HEAD") else "other"

async def pipe(reader, writer, who, upstream, state):
    try:
        while data := await reader.read(1 << 16):
            if upstream:
                if data[:4] in METHODS:
                    state["kind"] = kind_of(data)
                    counts[who][state["kind"]]["requests"] += 1
                    await asyncio.sleep(latency)  # one round trip's worth per request
            else:
                counts[who][state["kind"]]["bytes_down"] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

def handler(who):
    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", moto_port)
        state = {"kind": "other"}
        await asyncio.gather(pipe(reader, up_writer, who, True, state), pipe(up_reader, writer, who, False, state))
    return handle

async def main():
    workers = await asyncio.start_server(handler("workers"), "127.0.0.1", 0)
    driver = await asyncio.start_server(handler("driver"), "127.0.0.1", 0)
    print(json.dumps({"moto": moto_port, "workers": workers.sockets[0].getsockname()[1],
                      "driver": driver.sockets[0].getsockname()[1]}), flush=True)
    while True:
        await asyncio.sleep(0.5)
        with open(counts_file + ".tmp", "w") as fh:
            json.dump(counts, fh)
        os.replace(counts_file + ".tmp", counts_file)

asyncio.run(main())
'''


def start(latency_s: float, counts_file: str) -> tuple[subprocess.Popen, dict]:
    """The storage process and its ports: {"moto": direct, "workers": proxied, "driver": proxied}."""
    process = subprocess.Popen([sys.executable, "-c", PROXY, str(latency_s), counts_file], stdout=subprocess.PIPE,
                               text=True)
    return process, json.loads(process.stdout.readline())


def read_counts(path: str) -> dict:
    time.sleep(1.2)  # two write intervals of the proxy
    with open(path) as fh:
        return json.load(fh)


def difference(after: dict, before: dict) -> dict:
    return {who: {kind: {k: after[who][kind][k] - before[who][kind][k] for k in after[who][kind]}
                  for kind in after[who]} for who in after}
