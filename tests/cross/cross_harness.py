# SPDX-License-Identifier: MIT OR Apache-2.0
"""Drives the lock agents of the three languages (agent.py, agent.js and the Rust lock_agent)
through their common line protocol (README.md): one process per agent, commands on its
stdin, JSON lines read from its stdout by a thread. Every wait has a deadline; nothing sleeps
in place of an event."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WITNESS_LUA = HERE / "witness.lua"
LANGS = ("python", "node", "rust")

# Figures the tests measured (handoff gaps, ...), printed at the end of the run by conftest.py.
MEASURED: dict[str, Any] = {}

# Agents started and not yet stopped: killed at the end of the session whatever happened.
RUNNING: set["Agent"] = set()

Event = dict[str, Any]


def rust_agent_path() -> Path:
    """The lock_agent binary scripts/test-cross.sh built (or $TXCOORD_LOCK_AGENT)."""
    given = os.environ.get("TXCOORD_LOCK_AGENT")
    if given:
        return Path(given)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "lock_agent"


def agent_command(lang: str) -> list[str]:
    if lang == "python":
        return [sys.executable, str(HERE / "agent.py")]
    if lang == "node":
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node not found on PATH")
        return [node, str(HERE / "agent.js")]
    if lang == "rust":
        path = rust_agent_path()
        if not path.exists():
            raise RuntimeError(
                f"{path} is missing: build it with `cargo build -p txcoord-examples --bin lock_agent` "
                "(scripts/test-cross.sh does)"
            )
        return [str(path)]
    raise ValueError(lang)


def reply_to(cid: str, ev: Optional[str] = None) -> Callable[[Event], bool]:
    """A predicate: a line answering command `cid` (of kind `ev` if given)."""

    def pred(e: Event) -> bool:
        return e.get("id") == cid and (ev is None or e.get("ev") == ev)

    return pred


class AgentError(AssertionError):
    """An agent reported an error for a command, or did not answer in time."""


class Agent:
    """One agent process. `request()` sends a command and waits for its reply; `wait()` waits
    for any line matching a predicate (replies and spontaneous `lost` events alike)."""

    _ids = itertools.count(1)

    def __init__(self, lang: str, url: str, name: str, fallback_poll_ms: Optional[int] = None) -> None:
        self.lang = lang
        self.name = name
        env = dict(os.environ, TXCOORD_WITNESS_LUA=str(WITNESS_LUA), PYTHONUNBUFFERED="1")
        env.pop("TXCOORD_FALLBACK_POLL_MS", None)
        if fallback_poll_ms is not None:
            env["TXCOORD_FALLBACK_POLL_MS"] = str(fallback_poll_ms)
        self.proc = subprocess.Popen(
            [*agent_command(lang), url, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=str(ROOT),
        )
        RUNNING.add(self)
        self._cond = threading.Condition()
        self._events: list[tuple[float, Event]] = []  # (time received, event), unconsumed
        self.history: list[tuple[float, Event]] = []  # everything received
        self._stderr: list[str] = []
        self._eof = False
        self.paused = False
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        self.pid = self.proc.pid

    def __repr__(self) -> str:
        return f"<{self.lang} agent {self.name} pid {self.pid}>"

    # -- reading ---------------------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            now = time.monotonic()
            try:
                event = json.loads(raw)
            except ValueError:
                event = {"ev": "garbage", "line": raw.decode(errors="replace")}
            with self._cond:
                self._events.append((now, event))
                self.history.append((now, event))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._cond:
                if len(self._stderr) < 2000:
                    self._stderr.append(raw.decode(errors="replace"))

    def stderr_tail(self, lines: int = 30) -> str:
        with self._cond:
            return "".join(self._stderr[-lines:])

    def diagnostics(self) -> str:
        with self._cond:
            recent = [e for _, e in self.history[-15:]]
        return f"{self!r}\nlast lines: {json.dumps(recent, indent=None)}\nstderr:\n{self.stderr_tail()}"

    def wait(self, pred: Callable[[Event], bool], timeout: float, what: str) -> Event:
        """The first unconsumed line matching `pred` (consumed), waiting up to `timeout` s."""
        event, _ = self.wait_timed(pred, timeout, what)
        return event

    def wait_timed(self, pred: Callable[[Event], bool], timeout: float, what: str) -> tuple[Event, float]:
        """As `wait`, also returning the monotonic time the line was received."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, (received, event) in enumerate(self._events):
                    if pred(event):
                        del self._events[i]
                        return event, received
                remaining = deadline - time.monotonic()
                if self._eof:
                    raise AgentError(f"{self!r} exited (rc {self.proc.poll()}) before {what}\n{self.diagnostics()}")
                if remaining <= 0:
                    raise AgentError(f"timed out after {timeout} s waiting for {what}\n{self.diagnostics()}")
                self._cond.wait(remaining)

    def pending(self, pred: Callable[[Event], bool]) -> list[Event]:
        """Unconsumed lines matching `pred` (not consumed)."""
        with self._cond:
            return [e for _, e in self._events if pred(e)]

    # -- commands ----------------------------------------------------------------------------

    def send(self, verb: str, *args: object) -> str:
        """Sends a command; returns its id (replies carry it)."""
        cid = str(next(self._ids))
        line = " ".join([cid, verb, *(str(a) for a in args)]) + "\n"
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        return cid

    def reply(self, cid: str, ev: str, timeout: float = 15.0) -> Event:
        """The reply `ev` to command `cid` (an `error` reply raises AgentError)."""
        event = self.wait(lambda e: e.get("id") == cid and e.get("ev") in (ev, "error"), timeout, f"{ev} #{cid}")
        if event["ev"] == "error":
            raise AgentError(f"{self!r}: {ev} #{cid} failed: {event.get('message')}\n{self.diagnostics()}")
        return event

    def request(self, verb: str, *args: object, timeout: float = 15.0) -> Event:
        return self.reply(self.send(verb, *args), verb, timeout)

    # -- process control -----------------------------------------------------------------------

    def ready(self, timeout: float = 30.0) -> None:
        event = self.wait(lambda e: e.get("ev") == "ready", timeout, "ready")
        assert event["lang"] == self.lang, event

    def pause(self) -> None:
        """SIGSTOP: the whole process (event loop, runtime threads, timers) stops."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """`quit` (the agent releases what it holds), or a kill if it does not leave in time
        (or if stopping it fails in any other way, a test timeout included)."""
        try:
            if self.paused:
                try:
                    self.resume()
                except ProcessLookupError:  # it died while paused
                    pass
            if self.proc.poll() is None:
                try:
                    self.send("quit")
                    assert self.proc.stdin is not None
                    self.proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self.kill()
        for t in self._threads:
            t.join(timeout)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL unless it has exited (a paused process dies too); waits for it."""
        RUNNING.discard(self)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def kill_running() -> None:
    """Kills every agent still running (the end of a session that failed to stop them)."""
    for agent in list(RUNNING):
        agent.kill()


def start_agents(
    langs: Iterable[str], url: str, prefix: str = "", fallback_poll_ms: Optional[int] = None
) -> list[Agent]:
    """Starts one agent per language (all at once), and waits until each is ready.
    `fallback_poll_ms`: their managers' fallback poll (the default is 1000 ms)."""
    agents: list[Agent] = []
    try:
        for i, lang in enumerate(langs):
            agents.append(Agent(lang, url, f"{prefix}{lang}-{i}", fallback_poll_ms))
        for a in agents:
            a.ready()
    except BaseException:
        for a in agents:
            a.kill()
        raise
    return agents


def wait_until_asleep(agent: Agent, base: Event, timeout: float = 20.0) -> Event:
    """Waits until `agent`'s pending acquisition (started after the counters `base`) is asleep,
    waiting for a release notice (or a timer): the client's `sleeps` counter rose. Before
    that, a release could be found by the waiter's next attempt instead of waking it. Bounded
    in time and count."""
    deadline = time.monotonic() + timeout
    for _ in range(4000):
        s = agent.request("ping")
        if s["sleeps"] > base["sleeps"]:
            return s
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)  # polling interval of a condition with a deadline
    raise AgentError(f"{agent!r}: acquisition not asleep within {timeout} s\n{agent.diagnostics()}")
