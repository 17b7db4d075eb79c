# SPDX-License-Identifier: MIT OR Apache-2.0
"""Leader election at the Python level (async and blocking): one leader, terms that grow on
every change, resign hands over, callbacks on election and revocation. Scenario names follow
tests/node/election.test.js."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import pytest
import redis

import txcoord
from txcoord import LeaderElection

from helpers import wait_for, wait_until
from test_gc import collect_until_dead_async


class Events:
    """What on_elected/on_revoked saw, with an asyncio event per kind."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.elected = asyncio.Event()
        self.revoked = asyncio.Event()

    def on_elected(self, term: int) -> None:
        self.seen.append(("elected", term))
        self.elected.set()

    def on_revoked(self, term: int) -> None:
        self.seen.append(("revoked", term))
        self.revoked.set()


async def test_one_candidate_leads_and_the_others_wait(url: str, name: str) -> None:
    candidates = [LeaderElection(url, name, candidate_id=f"c{i}") for i in range(3)]
    won = await asyncio.gather(*(c.campaign(0) for c in candidates))
    assert sorted(won) == [False, False, True]
    leader = candidates[won.index(True)]
    assert leader.is_leader and leader.term is not None
    assert [c.is_leader for c in candidates].count(True) == 1
    assert all(c.term is None for c in candidates if c is not leader)
    for c in candidates:
        seen = await c.leader()
        assert seen is not None
        assert (seen.candidate_id, seen.term) == (leader.candidate_id, leader.term)
        assert 0 < seen.remaining_ms <= 10000
    assert await leader.campaign(0) is True, "a leader campaigning again still leads"
    await leader.resign()
    assert not leader.is_leader and leader.term is None
    assert await candidates[0].leader() is None


async def test_resigning_hands_over_and_the_term_grows_with_every_change(url: str, name: str) -> None:
    a_events, b_events = Events(), Events()
    a = LeaderElection(url, name, candidate_id="a", on_elected=a_events.on_elected, on_revoked=a_events.on_revoked)
    b_client = txcoord.Client(url)
    b = LeaderElection(b_client, name, candidate_id="b", on_elected=b_events.on_elected, on_revoked=b_events.on_revoked)
    assert await a.campaign(0)
    term_a = a.term
    assert term_a is not None
    await asyncio.wait_for(a_events.elected.wait(), 10)
    sleeps = b_client.stats()["sleeps"]
    waiting = asyncio.create_task(b.campaign(20000))
    await wait_for(lambda: b_client.stats()["sleeps"] > sleeps, "b to wait")
    assert b_events.seen == [] and not waiting.done()
    await a.resign()
    assert await asyncio.wait_for(waiting, 15) is True, "a resign wakes the next candidate"
    term_b = b.term
    assert term_b is not None and term_b > term_a
    await asyncio.wait_for(asyncio.gather(a_events.revoked.wait(), b_events.elected.wait()), 10)
    assert a_events.seen == [("elected", term_a), ("revoked", term_a)]
    assert b_events.seen == [("elected", term_b)]
    leader = await a.leader()
    assert leader is not None and leader.candidate_id == "b"
    # and back: every change of leader has a larger term
    again = asyncio.create_task(a.campaign(20000))
    await b.resign()
    assert await asyncio.wait_for(again, 15)
    assert a.term is not None and a.term > term_b
    await a.resign()


async def test_a_lost_leadership_is_revoked(url: str, raw: redis.Redis, name: str) -> None:
    events = Events()
    e = LeaderElection(url, name, ttl_ms=1500, on_elected=events.on_elected, on_revoked=events.on_revoked)
    assert await e.campaign(0)
    term = e.term
    # someone else takes the key: the next renewal (every ttl/3) finds it taken
    raw.set(f"txcoord:election:{name}", "2:00000000-0000-4000-8000-000000000000:1:0:usurper")
    await asyncio.wait_for(events.revoked.wait(), 10)
    assert not e.is_leader and e.term is None
    assert events.seen == [("elected", term), ("revoked", term)]


class Service:
    """Holds an election whose callbacks are its own methods (service -> election -> callback
    -> service)."""

    def __init__(self, url: str, name: str) -> None:
        self.terms: list[int] = []
        self.election = LeaderElection(url, name, on_elected=self.elected, on_revoked=self.revoked)

    def elected(self, term: int) -> None:
        self.terms.append(term)

    def revoked(self, term: int) -> None:
        self.terms.append(-term)


async def test_an_election_referring_to_its_owner_is_collected(url: str, name: str) -> None:
    service = Service(url, name)
    assert await service.election.campaign(0)
    await wait_for(lambda: len(service.terms) == 1, "on_elected")
    await service.election.resign()
    await wait_for(lambda: len(service.terms) == 2, "on_revoked")
    ref = weakref.ref(service)
    del service
    await collect_until_dead_async(ref, "the service holding the election")


async def test_coroutine_callbacks_run_as_tasks(url: str, name: str) -> None:
    seen: list[Any] = []
    done = asyncio.Event()

    async def elected(term: int) -> None:
        await asyncio.sleep(0)
        seen.append(term)
        done.set()

    e = LeaderElection(url, name, on_elected=elected)
    assert await e.campaign()  # no limit: this candidate is alone
    await asyncio.wait_for(done.wait(), 10)
    assert seen == [e.term]
    await e.resign()


async def test_a_cancelled_campaign_leaves_no_leadership(url: str, raw: redis.Redis, name: str) -> None:
    a = LeaderElection(url, name, candidate_id="holder")
    b_client = txcoord.Client(url)
    b = LeaderElection(b_client, name, candidate_id="quitter")
    assert await a.campaign(0)
    sleeps = b_client.stats()["sleeps"]
    waiting = asyncio.create_task(b.campaign(30000))
    await wait_for(lambda: b_client.stats()["sleeps"] > sleeps, "b to wait")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await a.resign()
    # nobody took over: the cancelled candidate does not lead
    assert raw.exists(f"txcoord:election:{name}") == 0
    assert not b.is_leader
    assert await b.leader() is None


async def test_async_with_campaigns_and_resigns(url: str, name: str) -> None:
    e = LeaderElection(url, name, candidate_id="ctx")
    async with e as leading:
        assert leading is e and e.is_leader
        seen = await e.leader()
        assert seen is not None and seen.candidate_id == "ctx"
    assert not e.is_leader
    assert await e.leader() is None


def test_the_blocking_election_is_the_twin(url: str, name: str) -> None:
    seen: list[tuple[str, int, str]] = []

    def on_elected(term: int) -> None:
        seen.append(("elected", term, threading.current_thread().name))

    def on_revoked(term: int) -> None:
        seen.append(("revoked", term, threading.current_thread().name))

    a = txcoord.sync.LeaderElection(url, name, candidate_id="sa", on_elected=on_elected, on_revoked=on_revoked)
    b = txcoord.sync.LeaderElection(url, name, candidate_id="sb")
    assert a.campaign(0) and a.term is not None
    assert b.campaign(0) is False
    leader = b.leader()
    assert leader is not None and leader.candidate_id == "sa"
    term = a.term
    a.resign()
    wait_until(lambda: len(seen) == 2, "both callbacks")
    assert [(k, t) for k, t, _ in seen] == [("elected", term), ("revoked", term)]
    assert all(thread != threading.current_thread().name for _, _, thread in seen), "a background thread"
    with b as leading:
        assert leading is b and b.is_leader and b.term is not None and b.term > term
    assert not b.is_leader
    assert "txcoord.sync.LeaderElection" in repr(b)


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"name": ""}, txcoord.InvalidArgumentError, "name"),
        ({"name": 7}, txcoord.InvalidTypeError, "name"),
        ({"ttl_ms": 0}, txcoord.InvalidArgumentError, "ttl_ms"),
        ({"ttl_ms": "10s"}, txcoord.InvalidTypeError, "ttl_ms"),
        ({"candidate_id": ""}, txcoord.InvalidArgumentError, "candidate_id"),
        ({"on_elected": 3}, txcoord.InvalidTypeError, "on_elected"),
        ({"on_revoked": "x"}, txcoord.InvalidTypeError, "on_revoked"),
    ],
)
def test_bad_election_arguments_name_themselves(url: str, kwargs: dict[str, Any], error: type[Exception], argument: str) -> None:
    args: dict[str, Any] = {"name": "n", **kwargs}
    with pytest.raises(error) as info:
        LeaderElection(url, **args)
    assert getattr(info.value, "argument") == argument


async def test_bad_campaign_timeouts_name_themselves(url: str, name: str) -> None:
    e = LeaderElection(url, name)
    assert txcoord.DEFAULT_LEADER_TTL_MS == 10000
    with pytest.raises(txcoord.InvalidArgumentError) as info:
        await e.campaign(-1)
    assert info.value.argument == "timeout_ms"
