"""Shared answers: one computation per change however many ask at once, per key, never kept across an
invalidation or past its time (real asyncio, real threads: what the app's routes run on)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from posecluster.serve.coalesce import SharedAnswers


def run(coroutine):
    """asyncio.run on a thread of its own: the browser tests' Playwright keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class Counting:
    """A slow computation that counts its runs (what a listing of the root costs)."""

    def __init__(self, seconds: float = 0.05):
        self.seconds, self.runs, self.lock = seconds, 0, threading.Lock()

    def __call__(self, value="answer"):
        with self.lock:
            self.runs += 1
        time.sleep(self.seconds)
        return f"{value}-{self.runs}"


def test_concurrent_requests_share_one_run_and_later_ones_its_answer():
    answers, produce = SharedAnswers(ttl=60), Counting()

    async def scenario():
        first = await asyncio.gather(*(answers.get("lab-a", produce) for _ in range(200)))
        later = await answers.get("lab-a", produce)
        return first, later

    first, later = run(scenario())
    assert produce.runs == 1 and set(first) == {"answer-1"} and later == "answer-1"


def test_each_key_has_its_own_answer():
    answers, produce = SharedAnswers(ttl=60), Counting()

    async def scenario():
        return await asyncio.gather(*(answers.get(key, lambda key=key: produce(key)) for key in ["a", "b"] * 50))

    results = run(scenario())
    assert produce.runs == 2 and {r.split("-")[0] for r in results[0::2]} == {"a"} and {r.split("-")[0] for r in results[1::2]} == {"b"}


def test_an_expired_answer_is_given_while_one_refresh_runs_and_an_invalidation_forgets_it():
    answers, produce = SharedAnswers(ttl=1.0), Counting(seconds=0.05)

    async def scenario():
        seen = [await answers.get("k", produce), await answers.get("k", produce)]
        await asyncio.sleep(1.05)
        seen += await asyncio.gather(*(answers.get("k", produce) for _ in range(50)))  # at once: the old answer
        while answers._refreshing:  # the one background refresh finishing
            await asyncio.sleep(0.01)
        seen.append(await answers.get("k", produce))
        answers.invalidate()
        seen.append(await answers.get("k", produce))  # waits for a fresh run
        return seen

    assert run(scenario()) == ["answer-1"] * 52 + ["answer-2", "answer-3"]
    assert produce.runs == 3


def test_an_answer_older_than_the_stale_bound_is_not_given():
    answers, produce = SharedAnswers(ttl=0.05, stale_for=0.1), Counting(seconds=0)

    async def scenario():
        first = await answers.get("k", produce)
        await asyncio.sleep(0.15)
        return first, await answers.get("k", produce)

    assert run(scenario()) == ("answer-1", "answer-2")


def test_a_run_that_started_before_an_invalidation_is_not_kept():
    answers, produce = SharedAnswers(ttl=60), Counting(seconds=1.0)  # still running at the invalidation

    async def scenario():
        running = asyncio.ensure_future(answers.get("k", produce))
        await asyncio.sleep(0.05)
        answers.invalidate()  # a job was submitted while the listing ran
        stale = await running
        return stale, await answers.get("k", produce)

    stale, fresh = run(scenario())
    assert (stale, fresh, produce.runs) == ("answer-1", "answer-2", 2)


def test_an_older_answer_given_during_a_refresh_is_marked_stale_and_the_fresh_one_is_not():
    answers, produce = SharedAnswers(ttl=2.0, stale_for=60), Counting(seconds=0.1)

    async def scenario():
        first = await answers.get_marked("lab-a", produce)
        await asyncio.sleep(2.1)  # past the ttl: the next request gets the old answer, marked
        during = await answers.get_marked("lab-a", produce)
        while answers._refreshing:  # the background refresh finishing
            await asyncio.sleep(0.01)
        after = await answers.get_marked("lab-a", produce)
        return first, during, after

    first, during, after = run(scenario())
    assert first == ("answer-1", False) and during == ("answer-1", True) and after == ("answer-2", False)
