"""The Jobs page while the Ray cluster does not answer, in a real browser (Playwright + Debian's Chromium):
it asks again less and less often, keeps its forms and what was typed in them, and recovers by itself
when the cluster answers. The cluster is a real private `ray start --head`, reached through a relay on a
port of the test's own that drops every connection until the test lets them through. The page's timers
run on Playwright's fake clock, so the intervals are read exactly and cost no waiting."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlparse

import pytest

from posecluster.serve import ServeOptions, create_app
from tests.serve.conftest import TOKEN, browser_page, needs_browser, running, screenshot

pytestmark = needs_browser


class Relay:
    """127.0.0.1:<port> in front of another address: while down, every connection is accepted and closed at
    once (a cluster that does not answer); once up, bytes are relayed both ways."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.up = target, False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            if not self.up:
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def relay(ray_head):
    address = urlparse(ray_head.address)
    relay = Relay((address.hostname, address.port))
    yield relay
    relay.close()


def until(condition, timeout: float = 20.0):
    """Poll `condition` in real time (the page's own timers are fake, so Playwright's waits are not used)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_the_jobs_page_asks_a_silent_cluster_less_and_less_often_keeps_its_forms_and_recovers(browser, tmp_path, ray_head, relay):
    (tmp_path / "lab").mkdir()
    options = ServeOptions(ray_address=f"http://127.0.0.1:{relay.port}", ray_token=ray_head.token)
    with running(create_app(str(tmp_path), TOKEN, options)) as base, browser_page(browser, base) as page:
        asked: list[float] = []
        page.on("request", lambda r: asked.append(time.monotonic()) if urlparse(r.url).path == "/api/runs" else None)
        page.clock.install(time=1_800_000_000)
        page.clock.pause_at(1_800_000_001)  # time moves only when the test moves it
        page.goto(f"{base}/#/jobs")
        page.reload()
        runs = page.locator("#runs")
        state = lambda: runs.evaluate("e => [e.dataset.failures, e.dataset.retryMs]")  # noqa: E731
        until(lambda: state() == ["1", "2000"])
        assert "does not answer" in page.inner_text("#runs .cluster-notice") and "asking again in 2 s" in page.inner_text("#runs")
        form = page.locator("#runs .run-form[data-kind='infer']")
        form.locator("[name='videos']").fill("lab/videos/")
        form.evaluate("e => { window.__form = e; }")
        delays = [2000]
        for failures in (2, 3, 4):
            before = len(asked)
            page.clock.run_for(delays[-1] - 100)
            time.sleep(0.3)
            assert len(asked) == before, f"asked again before {delays[-1]} ms"
            page.clock.run_for(100)
            until(lambda: state()[0] == str(failures))
            assert len(asked) == before + 1
            delays.append(int(state()[1]))
        assert delays == [2000, 4000, 8000, 16000]  # each wait twice the last
        assert page.locator("#archive-jobs h2").inner_text() == "Archive jobs"
        screenshot(page, "jobs-cluster-down")

        relay.up = True
        page.clock.run_for(delays[-1])
        until(lambda: state() == ["0", ""], timeout=60)
        assert page.inner_text("#runs .cluster-notice") == ""
        assert page.locator("#runs .runs-list table.runs, #runs .runs-list p").count() == 1
        assert form.evaluate("e => e === window.__form") and form.locator("[name='videos']").input_value() == "lab/videos/"
        assert page.locator(".run-form[data-kind='infer']").count() == 1
