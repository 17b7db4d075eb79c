# SPDX-License-Identifier: MIT OR Apache-2.0
"""Cross-language tests: Python, Node and Rust processes contend for the same locks on one
redis-server, each through its own package (agent.py, agent.js, lock_agent.rs).

- handoff: a lock held in one language blocks an acquirer in another, which is woken by the
  release notice and gets the lock soon after the release, in all 6 directions;
- re-entry: a lock acquired with an owner id in one language is re-entered with that owner id
  from another (same fencing token, hold count 2), while a third language without it waits
  until both holds are released, for all 6 pairs;
- fencing: tokens issued to the three languages on one resource form one strictly increasing
  sequence, checked by a witness that rejects any write with a token not above the last one;
- loss: a holder paused (SIGSTOP) beyond its TTL while another language takes the lock over
  learns that it lost the lock as soon as it runs again, refuses its next protected
  operation, and its stale fenced write is rejected by the witness.

Times come from the agents (wall clock in µs, one clock for every process on the host).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
import redis

from cross_harness import LANGS, MEASURED, Agent, AgentError, Event, reply_to, wait_until_asleep

AgentsFactory = Callable[..., list[Agent]]

# A release notice wakes the waiter within a few ms (the measured gaps are printed at the end).
# The handoff tests give the waiters a fallback poll of 60 s and the holders a TTL of 10 s, so
# no timer could wake a waiter before 10 s: this bound leaves a loaded machine running debug
# builds seconds, and still only passes with notification-driven handoff.
HANDOFF_BOUND_MS = 3_000
NO_TIMER_FALLBACK_POLL_MS = 60_000
HANDOFF_ROUNDS = 3
PAIRS = [(h, w) for h in LANGS for w in LANGS if h != w]


def lock_key(resource: str) -> str:
    return f"lock:{resource}"


def first_reply(waits: list[tuple[Agent, str]], ev: str, timeout: float) -> tuple[Agent, Event]:
    """The first of several pending commands (agent, id) to answer `ev` (that reply is consumed)."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        for agent, cid in waits:
            if agent.pending(reply_to(cid)):
                return agent, agent.reply(cid, ev, timeout=1)
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)  # polling interval of a condition with a deadline
    raise AgentError(f"none of {waits} answered {ev} within {timeout} s")


def check_handoff(holder_release: Event, acquired: Event, previous_token: int) -> float:
    """Checks a release → acquisition handoff; returns the gap in ms."""
    assert acquired["ok"] is True, acquired
    t_release = holder_release["t0_us"]
    t_acquired = acquired["t_us"]
    assert isinstance(t_release, int) and isinstance(t_acquired, int)
    assert t_acquired > t_release, "the waiter got the lock before the holder released it"
    token = acquired["token"]
    assert isinstance(token, int) and token > previous_token, (token, previous_token)
    return (t_acquired - t_release) / 1000


@pytest.mark.parametrize(("holder_lang", "waiter_lang"), PAIRS, ids=[f"{h}-to-{w}" for h, w in PAIRS])
def test_handoff_between_languages(agents: AgentsFactory, raw: redis.Redis, holder_lang: str, waiter_lang: str) -> None:
    holder, waiter = agents(holder_lang, waiter_lang, fallback_poll_ms=NO_TIMER_FALLBACK_POLL_MS)
    gaps: list[float] = []
    for rnd in range(HANDOFF_ROUNDS):
        # A fresh resource per round: the waiter's first wait on it subscribes to its channel.
        resource = f"handoff:{holder_lang}-{waiter_lang}:{rnd}"
        held = holder.request("acquire", resource, 10_000, 0)
        assert held["ok"] is True, held

        # Blocked: one attempt from the other language fails while the lock is held.
        probe = waiter.request("acquire", resource, 10_000, 0)
        assert probe["ok"] is False, probe

        base = waiter.request("ping")
        cid = waiter.send("acquire", resource, 10_000, 10_000)
        wait_until_asleep(waiter, base)
        assert not waiter.pending(reply_to(cid)), "acquired while the lock was held"
        assert raw.zcard(f"{{{lock_key(resource)}}}:~q") == 1, "the waiter is queued in Redis"

        released = holder.request("release", resource)
        acquired = waiter.reply(cid, "acquire", timeout=10)
        gap = check_handoff(released, acquired, held["token"])
        # Woken by the release notice, not by a timer (fallback poll or expiry).
        assert acquired["wake_notified"] >= 1, acquired
        assert acquired["wake_timer"] == 0, acquired
        assert gap < HANDOFF_BOUND_MS, f"handoff {holder_lang} → {waiter_lang} took {gap:.1f} ms"
        gaps.append(gap)

        waiter.request("release", resource)
        assert raw.exists(lock_key(resource)) == 0
    MEASURED[f"handoff ms {holder_lang}->{waiter_lang}"] = [round(g, 2) for g in gaps]


def test_lock_held_from_python_blocks_node_and_rust(agents: AgentsFactory, raw: redis.Redis) -> None:
    py, node, rust = agents("python", "node", "rust", fallback_poll_ms=NO_TIMER_FALLBACK_POLL_MS)
    resource = "three-way"
    held = py.request("acquire", resource, 10_000, 0)
    assert held["ok"] is True
    waits: list[tuple[Agent, str]] = []
    for agent in (node, rust):
        assert agent.request("acquire", resource, 10_000, 0)["ok"] is False
        base = agent.request("ping")
        waits.append((agent, agent.send("acquire", resource, 10_000, 10_000)))
        wait_until_asleep(agent, base)
    assert raw.zcard(f"{{{lock_key(resource)}}}:~q") == 2
    for agent, cid in waits:
        assert not agent.pending(reply_to(cid)), f"{agent!r} acquired a held lock"

    released = py.request("release", resource)
    first, acquired = first_reply(waits, "acquire", timeout=10)
    gap1 = check_handoff(released, acquired, held["token"])
    assert acquired["wake_notified"] >= 1 and acquired["wake_timer"] == 0, acquired
    assert gap1 < HANDOFF_BOUND_MS, f"python → {first.lang}: {gap1:.1f} ms"

    # The other one still waits: the lock went to exactly one of them.
    (second, second_cid), = [(a, c) for a, c in waits if a is not first]
    assert not second.pending(reply_to(second_cid)), "both waiters got the lock"
    token = acquired["token"]
    assert isinstance(token, int)
    released = first.request("release", resource)
    acquired = second.reply(second_cid, "acquire", timeout=10)
    gap2 = check_handoff(released, acquired, token)
    assert acquired["wake_notified"] >= 1, acquired
    assert gap2 < HANDOFF_BOUND_MS, f"{first.lang} → {second.lang}: {gap2:.1f} ms"
    second.request("release", resource)
    MEASURED[f"handoff ms python->{first.lang}->{second.lang}"] = [round(gap1, 2), round(gap2, 2)]


@pytest.mark.parametrize(("first_lang", "second_lang"), PAIRS, ids=[f"{a}-then-{b}" for a, b in PAIRS])
def test_an_owner_id_re_enters_the_lock_across_languages(
    agents: AgentsFactory, raw: redis.Redis, first_lang: str, second_lang: str
) -> None:
    (third_lang,) = [lang for lang in LANGS if lang not in (first_lang, second_lang)]
    first, second, third = agents(first_lang, second_lang, third_lang)
    resource = f"reenter:{first_lang}-{second_lang}"
    owner = f"saga-{first_lang}-{second_lang}"
    holds = f"{{{lock_key(resource)}}}:~h"  # the owner's holds, once it holds the lock twice

    held = first.request("acquire", resource, 10_000, 0, f"owner={owner}")
    assert held["ok"] is True and held["hold_count"] == 1, held
    # The same owner id from another language re-enters at once: one lock, one token.
    again = second.request("acquire", resource, 10_000, 0, f"owner={owner}")
    assert again["ok"] is True, again
    assert again["token"] == held["token"], "a re-entry shares the holder's fencing token"
    assert again["hold_count"] == 2, again
    # the value names the owner (PROTOCOL.md, section 2); H holds one id per hold
    value = raw.get(lock_key(resource))
    assert isinstance(value, str) and value.endswith(f":{owner}"), value
    assert raw.scard(holds) == 2

    # Without the owner id, the third language is excluded and waits.
    probe = third.request("acquire", resource, 10_000, 0)
    assert probe["ok"] is False, probe
    base = third.request("ping")
    cid = third.send("acquire", resource, 10_000, 20_000)
    wait_until_asleep(third, base)

    first.request("release", resource)
    assert raw.exists(lock_key(resource)) == 1 and raw.scard(holds) == 1, "one hold is left"
    assert not third.pending(reply_to(cid)), "acquired while a hold was left"
    last = second.request("release", resource)
    acquired = third.reply(cid, "acquire", timeout=15)
    assert acquired["ok"] is True, acquired
    assert acquired["t_us"] > last["t0_us"], "acquired before the last hold was released"
    assert acquired["token"] > held["token"] and acquired["hold_count"] == 1, acquired
    third.request("release", resource)
    assert raw.exists(lock_key(resource)) == 0


def witness_state(raw: redis.Redis, key: str) -> dict[str, str]:
    return raw.hgetall(key)  # type: ignore[return-value]


def test_fencing_tokens_form_one_sequence_across_languages(agents: AgentsFactory, raw: redis.Redis) -> None:
    trio = agents(*LANGS)
    seed = 5
    rng = random.Random(seed)
    resource, witness = "fence:sequence", "witness:fence:sequence"
    tokens: list[int] = []
    order: list[str] = []
    secs, micros = raw.time()
    clock_before = secs * 1_000_000 + micros
    for _ in range(60):
        agent = rng.choice(trio)
        got = agent.request("acquire", resource, 5_000, 5_000)
        assert got["ok"] is True, got
        wrote = agent.request("write", resource, witness)
        assert wrote["done"] is True and wrote["accepted"] is True, (wrote, seed)
        agent.request("release", resource)
        tokens.append(got["token"])
        order.append(agent.lang)
    assert {lang: order.count(lang) >= 10 for lang in LANGS} == {lang: True for lang in LANGS}, order
    assert sum(a != b for a, b in zip(order, order[1:])) >= 20, order
    # One sequence: each grant's token is larger than the previous grant's, whichever language
    # got it, and never below the Redis clock (µs) of its grant (PROTOCOL.md, section 5).
    assert all(b > a for a, b in zip(tokens, tokens[1:])), list(zip(order, tokens))
    secs, micros = raw.time()
    clock_after = secs * 1_000_000 + micros
    assert clock_before <= tokens[0] and tokens[-1] <= clock_after, (clock_before, tokens, clock_after)
    state = witness_state(raw, witness)
    assert state["accepted"] == "60" and "rejected" not in state, state
    assert int(state["token"]) == tokens[-1]


@pytest.mark.parametrize("mode", ["fair", "barging"])
def test_fencing_tokens_under_contention(agents: AgentsFactory, raw: redis.Redis, mode: str) -> None:
    """The three agents loop acquire → fenced write → release on one resource at once."""
    rounds = 40
    trio = agents(*LANGS)
    resource, witness = f"fence:{mode}", f"witness:fence:{mode}"
    extra = ["fair"] if mode == "fair" else []
    started = time.monotonic()
    cids = [a.send("cycle", resource, rounds, 5_000, 20_000, witness, *extra) for a in trio]
    for agent, cid in zip(trio, cids):
        done = agent.reply(cid, "cycle", timeout=90)
        assert done["acquired"] == rounds, done
    elapsed = time.monotonic() - started

    holds: list[tuple[int, int, int, str]] = []  # (acquired at, released at, token, language)
    for agent, cid in zip(trio, cids):
        events = agent.pending(reply_to(cid, "round"))
        assert len(events) == rounds
        for e in events:
            assert e["ok"] is True and e["accepted"] is True, e
            holds.append((e["t_acq_us"], e["t_rel_us"], e["token"], agent.lang))
    holds.sort()
    tokens = [h[2] for h in holds]
    # In the order the holds happened, tokens strictly increase (so none repeats).
    assert all(b > a for a, b in zip(tokens, tokens[1:])), holds
    assert len(set(tokens)) == len(tokens) == 3 * rounds, "a grant is missing or duplicated"
    # Mutual exclusion: no two holds overlap.
    overlaps = [(a, b) for a, b in zip(holds, holds[1:]) if b[0] < a[1]]
    assert not overlaps, overlaps
    state = witness_state(raw, witness)
    assert state["accepted"] == str(3 * rounds) and "rejected" not in state, state
    switches = sum(a[3] != b[3] for a, b in zip(holds, holds[1:]))
    if mode == "fair":
        # FIFO: a releasing agent queues behind the others, so the languages take turns.
        assert switches >= 2 * rounds, f"only {switches} handoffs between languages"
    MEASURED[f"contention {mode}"] = {
        "holds": len(holds),
        "seconds": round(elapsed, 2),
        "language switches": switches,
    }


LOST_CASES = [("python", "node"), ("node", "rust"), ("rust", "python")]


@pytest.mark.parametrize(("holder_lang", "taker_lang"), LOST_CASES, ids=[f"{h}-loses-to-{t}" for h, t in LOST_CASES])
def test_lost_lock_signal_after_a_pause(agents: AgentsFactory, raw: redis.Redis, holder_lang: str, taker_lang: str) -> None:
    holder, taker = agents(holder_lang, taker_lang)
    resource, witness = f"lost:{holder_lang}", f"witness:lost:{holder_lang}"
    ttl = 1_000  # renewed every ~333 ms while the holder runs

    held = holder.request("acquire", resource, ttl, 0)
    assert held["ok"] is True
    assert holder.request("write", resource, witness)["accepted"] is True

    base = taker.request("ping")
    cid = taker.send("acquire", resource, 10_000, 8_000)
    wait_until_asleep(taker, base)

    # The holder stops (a GC pause, a stopped VM) for longer than its TTL ...
    holder.pause()
    paused = time.monotonic()
    # ... the key expires, and the other language takes the lock over.
    took = taker.reply(cid, "acquire", timeout=8)
    assert took["ok"] is True, took
    assert took["token"] > held["token"]
    assert time.monotonic() - paused < 5
    assert taker.request("write", resource, witness)["accepted"] is True

    # The holder's next protected operation is already waiting when it resumes.
    wid = holder.send("write", resource, witness)
    holder.resume()
    resumed = time.monotonic()
    wrote, wrote_at = holder.wait_timed(reply_to(wid), 5, "the reply to the write")
    assert wrote["ev"] == "write", wrote
    assert wrote["is_held"] is False and wrote["done"] is False, f"stale holder went ahead: {wrote}"

    lost, received = holder.wait_timed(
        lambda e: e.get("ev") == "lost" and e.get("resource") == resource, timeout=5, what="the lost-lock signal"
    )
    signal_ms = (received - resumed) * 1000
    # The renewal that was due during the pause runs at once and finds the deadline passed.
    assert lost["reason"] in ("deadline", "taken", "expired"), lost
    assert lost["is_held"] is False and lost["status"] == "lost", lost
    assert lost["token"] == held["token"]
    assert signal_ms < 3_000, f"lost-lock signal {signal_ms:.0f} ms after the holder resumed"
    status = holder.request("status", resource)
    assert status["is_held"] is False and status["status"] == "lost" and status["loss_reason"] == lost["reason"]
    assert status["remaining_validity_ms"] == 0

    # Were it to write anyway, the witness rejects the stale token.
    forced = holder.request("write", resource, witness, "force")
    assert forced["done"] is True and forced["accepted"] is False, forced
    state = witness_state(raw, witness)
    assert int(state["token"]) == took["token"] and state["rejected"] == "1", state

    # Releasing the lost lock does not disturb the successor.
    holder.request("release", resource)
    assert raw.pttl(lock_key(resource)) > 0
    assert taker.request("status", resource)["is_held"] is True
    taker.request("release", resource)
    assert raw.exists(lock_key(resource)) == 0
    MEASURED[f"lost {holder_lang} (taken by {taker_lang})"] = {
        "reason": lost["reason"],
        "signal ms after resume": round(signal_ms, 1),
        "signal before the refused write's reply": received < wrote_at,
        "taker waited ms": round((took["t_us"] - took["t0_us"]) / 1000, 1),
    }
