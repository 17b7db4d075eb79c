# SPDX-License-Identifier: MIT OR Apache-2.0
"""Leader election across languages: candidates in Python, Node and Rust processes, each
through its package's LeaderElection (agent.py, agent.js, lock_agent.rs), in one election.

- one leader at a time: the leadership spans (from each `elected` event to the end of that
  leadership) never overlap, every `leader` read agrees, and the term grows with every change;
  a leader killed (SIGKILL) is replaced by another language within its lease and one renewal
  interval, and that one's death hands over to the third;
- a leader paused (SIGSTOP) past its lease and woken while Redis itself is stopped refuses its
  protected action at once: it knows it is deposed from its local deadline, before any reply
  from Redis could tell it; its stale term, written anyway, is rejected by the witness;
- resign hands over at once (the release notice wakes a waiting candidate), not at the lease's end.

Times come from the agents (wall clock in µs, one clock for every process on the host).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import pytest
import redis

from conftest import RedisServer
from cross_harness import LANGS, MEASURED, Agent, AgentError, Event, reply_to

AgentsFactory = Callable[..., list[Agent]]

# A leader renews every third of its ttl; one that dies is replaced when its lease runs out (at
# most a ttl after its last renewal), and the waiting candidates are woken at the lease's end.
# The margin is for a loaded 2-core machine running debug builds.
TTL_MS = 1_500
RENEWAL_MS = TTL_MS // 3
MARGIN_MS = 5_000
HANDOVER_BOUND_MS = TTL_MS + RENEWAL_MS + MARGIN_MS
CAMPAIGN_TIMEOUT_MS = 100_000  # longer than any test runs (the pytest timeout is 120 s)
# The new leader renews while Redis is stopped for a moment (about half a second) in the pause
# test: a longer lease keeps it leading through that moment.
PAUSE_TTL_MS = 5_000
# A resignation wakes a waiting candidate by its release notice: far sooner than the lease.
RESIGN_TTL_MS = 15_000
RESIGN_BOUND_MS = 5_000


def now_us() -> int:
    return time.time_ns() // 1000


def is_event(ev: str, name: str, term: int | None = None) -> Callable[[Event], bool]:
    """A predicate: a spontaneous `elected`/`revoked` line of election `name` (of that term)."""

    def pred(e: Event) -> bool:
        return e.get("ev") == ev and e.get("name") == name and (term is None or e.get("term") == term)

    return pred


def first_event(agents: Iterable[Agent], pred: Callable[[Event], bool], timeout: float, what: str) -> tuple[Agent, Event]:
    """The first line matching `pred` from any of `agents` (consumed), waiting up to `timeout` s."""
    candidates = list(agents)
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        for agent in candidates:
            if agent.pending(pred):
                return agent, agent.wait(pred, 1, what)
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)  # polling interval of a condition with a deadline
    raise AgentError(f"none of {candidates} reported {what} within {timeout} s")


def observe(alive: list[Agent], name: str, leader: Agent, term: int) -> None:
    """Every live agent reads `leader` with `term` as the leader, and only `leader` believes it leads."""
    for agent in alive:
        seen = agent.request("leader", name)
        assert (seen["candidate_id"], seen["term"]) == (leader.name, term), f"{agent!r} sees {seen}"
        if agent is leader:
            assert seen["is_leader"] is True and seen["own_term"] == term, seen
        else:
            assert seen["is_leader"] is False and seen["own_term"] is None, f"{agent!r}: {seen}"


def wait_until_renewed(agent: Agent, base: Event, timeout: float = 20.0) -> None:
    """Waits until `agent`'s client renewed a lease since the counters `base` were read."""
    deadline = time.monotonic() + timeout
    for _ in range(4000):
        if agent.request("ping")["renewals"] > base["renewals"]:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)  # polling interval of a condition with a deadline
    raise AgentError(f"{agent!r}: no renewal within {timeout} s\n{agent.diagnostics()}")


def check_one_at_a_time(spans: list[tuple[int, int, int, str]]) -> None:
    """Leaderships as (start µs, end µs, term, who), in the order they began: none overlaps
    the next, and each has a larger term."""
    for a, b in zip(spans, spans[1:]):
        assert b[0] >= a[1], f"{b[3]} was elected {(a[1] - b[0]) / 1000:.1f} ms before {a[3]} stopped leading"
        assert b[2] > a[2], f"term {b[2]} of {b[3]} after term {a[2]} of {a[3]}"


def election_events(agents: Iterable[Agent], name: str) -> list[tuple[int, str, int, str]]:
    """Every `elected`/`revoked` line of election `name` the agents printed, as
    (t_us, ev, term, agent name), in time order."""
    out = []
    for agent in agents:
        for _, e in agent.history:
            if e.get("ev") in ("elected", "revoked") and e.get("name") == name:
                out.append((int(e["t_us"]), str(e["ev"]), int(e["term"]), agent.name))
    return sorted(out)


def witness_state(raw: redis.Redis, key: str) -> dict[str, str]:
    state = raw.hgetall(key)
    assert isinstance(state, dict)
    return {str(k): str(v) for k, v in state.items()}


def answers_ping(port: int, timeout: float) -> bool:
    """Whether the redis-server on `port` answers a PING within `timeout` s."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:  # timeouts included
        return False


@contextmanager
def redis_stopped(server: RedisServer) -> Iterator[None]:
    """The redis-server stopped (SIGSTOP) for the block: nothing sent to it is answered."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def test_one_leader_at_a_time_and_a_killed_leader_is_replaced(agents: AgentsFactory, raw: redis.Redis) -> None:
    trio = agents(*LANGS)
    name = "election:kill"
    campaigns = {a: a.send("campaign", name, TTL_MS, CAMPAIGN_TIMEOUT_MS) for a in trio}
    alive = list(trio)
    spans: list[tuple[int, int, int, str]] = []
    handovers: list[dict[str, object]] = []

    leader, elected = first_event(alive, is_event("elected", name), 30, "the first election")
    won = leader.reply(campaigns[leader], "campaign")
    assert won["ok"] is True and won["term"] == elected["term"], (won, elected)
    term = int(elected["term"])
    start = int(elected["t_us"])

    for _ in range(2):
        observe(alive, name, leader, term)
        # it keeps leading across a renewal of its lease
        wait_until_renewed(leader, leader.request("ping"))
        observe(alive, name, leader, term)
        waiting = [a for a in alive if a is not leader]
        for a in waiting:
            assert not a.pending(reply_to(campaigns[a])), f"{a!r} won a campaign while {leader!r} leads"
        # The lease as Redis has it just before the kill: no one may lead before it ends.
        t_read = now_us()
        lease = leader.request("leader", name)
        assert lease["candidate_id"] == leader.name and lease["remaining_ms"] > 0, lease
        lease_end_us = t_read + int(lease["remaining_ms"]) * 1000
        t_kill = now_us()
        leader.kill()
        spans.append((start, t_kill, term, leader.name))
        alive.remove(leader)

        successor, elected = first_event(
            waiting, is_event("elected", name), HANDOVER_BOUND_MS / 1000 + 10, f"an election after {leader!r} died"
        )
        handover_ms = (int(elected["t_us"]) - t_kill) / 1000
        assert int(elected["term"]) > term, (elected, term)
        # 2 ms: Redis reports the remaining lease in whole ms
        assert int(elected["t_us"]) >= lease_end_us - 2_000, (
            f"{successor!r} was elected {(lease_end_us - int(elected['t_us'])) / 1000:.1f} ms before the dead leader's lease ended"
        )
        assert handover_ms < HANDOVER_BOUND_MS, f"handover after the leader's death took {handover_ms:.0f} ms"
        won = successor.reply(campaigns[successor], "campaign")
        assert won["ok"] is True and won["term"] == elected["term"], (won, elected)
        handovers.append(
            {
                "from": leader.lang,
                "to": successor.lang,
                "ms": round(handover_ms, 1),
                "after the lease's end ms": round((int(elected["t_us"]) - lease_end_us) / 1000, 1),
            }
        )
        leader, term, start = successor, int(elected["term"]), int(elected["t_us"])

    # The last one leads alone; then it steps down and nobody leads.
    observe(alive, name, leader, term)
    resigned = leader.request("resign", name)
    assert resigned["is_leader"] is False, resigned
    spans.append((start, int(resigned["t0_us"]), term, leader.name))
    leader.wait(is_event("revoked", name, term), 10, "the revocation after resign")
    assert leader.request("leader", name)["candidate_id"] is None

    check_one_at_a_time(spans)
    events = election_events(trio, name)
    elected_terms = [term for _, ev, term, _ in events if ev == "elected"]
    assert elected_terms == [s[2] for s in spans], events
    revoked = [(t, who) for _, ev, t, who in events if ev == "revoked"]
    assert revoked == [(term, leader.name)], f"a revocation other than the last leader's resignation: {events}"
    assert {s[3] for s in spans} == {a.name for a in trio}, "every language led once"
    MEASURED["election handover after SIGKILL (ttl 1500 ms) ms"] = handovers


@pytest.mark.parametrize("paused_lang", LANGS)
def test_a_paused_leader_knows_it_is_deposed_when_it_wakes(
    agents: AgentsFactory, raw: redis.Redis, redis_server: RedisServer, paused_lang: str
) -> None:
    others = [lang for lang in LANGS if lang != paused_lang]
    old, *rest = agents(paused_lang, *others)
    name, witness = f"election:pause:{paused_lang}", f"witness:election:pause:{paused_lang}"

    won = old.request("campaign", name, PAUSE_TTL_MS, 10_000)
    assert won["ok"] is True, won
    old_term = int(won["term"])
    old.wait(is_event("elected", name, old_term), 10, "the elected event")
    led = old.request("lead", name, witness)
    assert led["done"] is True and led["accepted"] is True and led["term"] == old_term, led
    campaigns = {a: a.send("campaign", name, PAUSE_TTL_MS, CAMPAIGN_TIMEOUT_MS) for a in rest}

    # The leader stops (a GC pause, a stopped VM) past its lease; another language takes over.
    old.pause()
    paused = now_us()
    bound_s = (PAUSE_TTL_MS + PAUSE_TTL_MS // 3 + MARGIN_MS) / 1000
    new, elected = first_event(rest, is_event("elected", name), bound_s, "an election while the leader is paused")
    new_term = int(elected["term"])
    assert new_term > old_term, (elected, old_term)
    assert new.reply(campaigns[new], "campaign")["ok"] is True
    wrote = new.request("lead", name, witness)
    assert wrote["done"] is True and wrote["accepted"] is True and wrote["term"] == new_term, wrote

    # The old leader wakes while Redis answers nothing: what it knows then, it knows locally.
    with redis_stopped(redis_server):
        old.resume()
        resumed = time.monotonic()
        refused = old.request("lead", name, witness, timeout=10)
        refused_ms = (time.monotonic() - resumed) * 1000
        assert refused["is_leader"] is False and refused["done"] is False, (
            f"the {paused_lang} leader woke past its lease and still claimed to lead: {refused}"
        )
        assert refused["current_term"] is None, refused
        # It is told it lost the leadership without Redis too (once its renewal gives up asking).
        revoked, revoked_at = old.wait_timed(is_event("revoked", name, old_term), 10, "the revocation after the pause")
        assert not answers_ping(redis_server.port, 0.2), "the redis-server was not stopped"

    # Were it to act anyway, the witness rejects its stale term.
    forced = old.request("lead", name, witness, "force")
    assert forced["notified_term"] is None, f"the events still say it leads after 'revoked': {forced}"
    assert forced["done"] is True and forced["accepted"] is False and forced["term"] == old_term, forced
    assert forced["is_leader"] is False, forced
    seen = old.request("leader", name)
    assert (seen["candidate_id"], seen["term"], seen["is_leader"]) == (new.name, new_term, False), seen
    state = witness_state(raw, witness)
    assert (int(state["token"]), state["writer"]) == (new_term, new.name), state
    assert (state["accepted"], state.get("rejected")) == ("2", "1"), state
    # The third candidate still waits; the new leader still leads.
    third = next(a for a in rest if a is not new)
    assert not third.pending(reply_to(campaigns[third])), "a second leader was elected"
    observe([new, third, old], name, new, new_term)
    MEASURED[f"paused {paused_lang} leader"] = {
        "handover after the pause ms": round((int(elected["t_us"]) - paused) / 1000, 1),
        "refused after wake-up ms": round(refused_ms, 1),
        "revoked after wake-up ms": round((revoked_at - resumed) * 1000, 1),
        # what the events (on_elected/on_revoked, 'elected'/'revoked', watch()) said at the refusal
        "events said leading at the refusal": refused["notified_term"] == old_term,
        "new leader": new.lang,
    }


def test_resign_hands_over_at_once(agents: AgentsFactory, raw: redis.Redis) -> None:
    trio = agents(*LANGS)
    name = "election:resign"
    campaigns = {a: a.send("campaign", name, RESIGN_TTL_MS, CAMPAIGN_TIMEOUT_MS) for a in trio}
    leader, elected = first_event(trio, is_event("elected", name), 30, "the first election")
    assert leader.reply(campaigns[leader], "campaign")["ok"] is True
    term, start = int(elected["term"]), int(elected["t_us"])
    waiting = [a for a in trio if a is not leader]
    spans: list[tuple[int, int, int, str]] = []
    handovers: list[dict[str, object]] = []

    for _ in range(2):
        observe(trio, name, leader, term)
        resigned = leader.request("resign", name)
        assert resigned["is_leader"] is False, resigned
        spans.append((start, int(resigned["t0_us"]), term, leader.name))
        successor, elected = first_event(waiting, is_event("elected", name), RESIGN_BOUND_MS / 1000 + 10, "the next election")
        handover_ms = (int(elected["t_us"]) - int(resigned["t0_us"])) / 1000
        assert int(elected["term"]) > term, (elected, term)
        assert handover_ms < RESIGN_BOUND_MS, f"the resignation handed over after {handover_ms:.0f} ms (lease {RESIGN_TTL_MS} ms)"
        leader.wait(is_event("revoked", name, term), 10, "the revocation of the one who resigned")
        won = successor.reply(campaigns[successor], "campaign")
        assert won["ok"] is True and won["term"] == elected["term"], won
        handovers.append(
            {"from": leader.lang, "to": successor.lang, "ms": round(handover_ms, 1), "wake_notified": won["wake_notified"]}
        )
        waiting.remove(successor)
        leader, term, start = successor, int(elected["term"]), int(elected["t_us"])

    observe(trio, name, leader, term)
    resigned = leader.request("resign", name)
    spans.append((start, int(resigned["t0_us"]), term, leader.name))
    leader.wait(is_event("revoked", name, term), 10, "the last revocation")
    for agent in trio:
        seen = agent.request("leader", name)
        assert seen["candidate_id"] is None and seen["is_leader"] is False, seen
    check_one_at_a_time(spans)
    events = election_events(trio, name)
    assert [t for _, ev, t, _ in events if ev == "elected"] == [s[2] for s in spans], events
    assert sorted(t for _, ev, t, _ in events if ev == "revoked") == [s[2] for s in spans], events
    MEASURED[f"election handover after resign (ttl {RESIGN_TTL_MS} ms) ms"] = handovers
