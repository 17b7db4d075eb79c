# SPDX-License-Identifier: MIT OR Apache-2.0
"""Saga records and the built-in Redis repository at the Python level (async and blocking).
Scenario names follow tests/node/saga.test.js."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

import txcoord
from txcoord import RedisSagaRepository, SagaRecord, SagaStatistics, SagaStatus

UTC = timezone.utc


def test_saga_status_is_a_str_enum_of_the_six_statuses() -> None:
    assert [s.value for s in SagaStatus] == [
        "PENDING",
        "EXECUTING",
        "COMPENSATING",
        "COMPLETED",
        "COMPENSATED",
        "FAILED",
    ]
    assert isinstance(SagaStatus.FAILED, str)
    assert SagaStatus.FAILED == "FAILED"
    assert str(SagaStatus.FAILED) == "FAILED"
    assert f"{SagaStatus.EXECUTING}" == "EXECUTING"
    assert SagaStatus("COMPLETED") is SagaStatus.COMPLETED
    assert txcoord.sync.SagaStatus is SagaStatus


def test_a_record_is_built_with_keywords_compared_and_shown() -> None:
    created = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    r = SagaRecord("s-1", "CreateOrderSaga", priority=3, created_at=created, error="boom", retry_count=2)
    assert (r.id, r.type, r.status, r.priority, r.retry_count, r.error) == (
        "s-1",
        "CreateOrderSaga",
        SagaStatus.EXECUTING,
        3,
        2,
        "boom",
    )
    assert isinstance(r.status, SagaStatus)
    assert r.created_at == created and r.updated_at == created
    assert r.created_at.tzinfo is not None and r.created_at.utcoffset() == timedelta(0)
    assert (r.stuck_reason, r.stuck_detail, r.version, r.term) == (None, None, 0, 0)
    same = SagaRecord("s-1", "CreateOrderSaga", priority=3, created_at=created, error="boom", retry_count=2)
    assert r == same
    same.status = "FAILED"
    assert same.status is SagaStatus.FAILED
    assert r != same
    text = repr(r)
    assert text.startswith("SagaRecord(id='s-1', type='CreateOrderSaga', status='EXECUTING', priority=3")
    assert "2024-05-01T12:00:00.123000+00:00" in text
    # any time zone names a point in time; it reads back in UTC
    tokyo = timezone(timedelta(hours=9))
    r.updated_at = datetime(2024, 5, 1, 21, 0, 1, tzinfo=tokyo)
    assert r.updated_at == datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    assert r.updated_at.tzinfo == UTC
    # a fresh record is created now
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert before < SagaRecord("s-2", "T").created_at < before + timedelta(seconds=60)
    with pytest.raises(TypeError):
        hash(r)


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"id": ""}, txcoord.InvalidArgumentError, "id"),
        ({"id": 5}, txcoord.InvalidTypeError, "id"),
        ({"type": ""}, txcoord.InvalidArgumentError, "type"),
        ({"status": "DONE"}, txcoord.InvalidArgumentError, "status"),
        ({"status": 1}, txcoord.InvalidTypeError, "status"),
        ({"priority": 2**40}, txcoord.InvalidArgumentError, "priority"),
        ({"priority": True}, txcoord.InvalidTypeError, "priority"),
        ({"retry_count": -1}, txcoord.InvalidArgumentError, "retry_count"),
        ({"version": 1.5}, txcoord.InvalidArgumentError, "version"),
        ({"term": "1"}, txcoord.InvalidTypeError, "term"),
        ({"error": 3}, txcoord.InvalidTypeError, "error"),
        ({"created_at": datetime(2024, 1, 1)}, txcoord.InvalidArgumentError, "created_at"),
        ({"updated_at": 1700000000000}, txcoord.InvalidTypeError, "updated_at"),
    ],
)
def test_bad_record_fields_name_the_argument(kwargs: dict[str, Any], error: type[Exception], argument: str) -> None:
    args: dict[str, Any] = {"id": "s", "type": "T", **kwargs}
    with pytest.raises(error) as info:
        SagaRecord(**args)
    assert getattr(info.value, "argument") == argument


async def test_the_redis_repository_saves_finds_and_counts(url: str, raw: redis.Redis) -> None:
    repo = RedisSagaRepository(url)
    assert await repo.find_by_id("nope") is None
    start = datetime.now(UTC) - timedelta(seconds=10)
    a = SagaRecord("a", "CreateOrderSaga", priority=2, created_at=start)
    b = SagaRecord("b", "ProcessRefundSaga", created_at=start, status=SagaStatus.PENDING)
    assert await repo.save(a) is True
    await repo.save(b)
    got = await repo.find_by_id("a")
    assert got is not None
    assert (got.id, got.type, got.status, got.priority, got.created_at, got.version) == (
        "a",
        "CreateOrderSaga",
        SagaStatus.EXECUTING,
        2,
        start.replace(microsecond=start.microsecond // 1000 * 1000),
        1,
    )
    assert sorted(s.id for s in await repo.find_active_sagas()) == ["a", "b"]
    stats = await repo.get_statistics()
    assert isinstance(stats, SagaStatistics)
    assert (stats.active, stats.completed, stats.failed, stats.compensated, stats.average_duration) == (2, 0, 0, 0, 0.0)

    # the seed's way: change the record, save it
    got.status = SagaStatus.COMPLETED
    got.updated_at = start + timedelta(seconds=4)
    await repo.save(got)
    b2 = await repo.find_by_id("b")
    assert b2 is not None
    b2.status = "FAILED"
    b2.error = "payment declined"
    b2.updated_at = start + timedelta(seconds=6)
    await repo.save(b2)
    assert await repo.find_active_sagas() == []
    stats = await repo.get_statistics()
    assert (stats.active, stats.completed, stats.failed) == (0, 1, 1)
    assert stats.average_duration == pytest.approx(5000, abs=2), "the mean of 4 s and 6 s, in ms"
    failed = await repo.find_by_id("b")
    assert failed is not None and failed.error == "payment declined" and failed.version == 2
    # records live in the protocol's keys, all in one slot
    assert raw.hget("{txcoord:sagas}:saga:b", "status") == "FAILED"


async def test_a_conditional_save_refuses_a_stale_version_a_deposed_term_and_a_finished_saga(url: str) -> None:
    repo = RedisSagaRepository(url)
    s = SagaRecord("c", "CreateOrderSaga")
    assert await repo.save(s, expected_version=0) is True
    assert await repo.save(s, expected_version=0) is False, "the stored version is 1 now"
    current = await repo.find_by_id("c")
    assert current is not None and current.version == 1
    current.retry_count = 1
    assert await repo.save(current, expected_version=1, term=7) is True
    stale = await repo.find_by_id("c")
    assert stale is not None and stale.term == 7
    assert await repo.save(stale, term=6) is False, "a deposed leader's term"
    stale.status = SagaStatus.COMPLETED
    assert await repo.save(stale, expected_version=2, guard_finished=True) is True
    done = await repo.find_by_id("c")
    assert done is not None
    done.status = SagaStatus.FAILED
    assert await repo.save(done, guard_finished=True) is False, "a finished saga stays finished"
    final = await repo.find_by_id("c")
    assert final is not None and final.status == SagaStatus.COMPLETED
    with pytest.raises(txcoord.InvalidArgumentError) as e:
        await repo.save(final, expected_version=-1)
    assert e.value.argument == "expected_version"
    with pytest.raises(txcoord.InvalidTypeError) as bad:
        await repo.save(final, guard_finished=1)  # type: ignore[arg-type]
    assert bad.value.argument == "guard_finished"
    with pytest.raises(txcoord.InvalidTypeError) as bad:
        await repo.save(42)
    assert bad.value.argument == "saga"


async def test_stuck_sagas_follow_the_per_type_limits(url: str) -> None:
    repo = RedisSagaRepository(url, stuck_after_ms={"QuickSaga": 1000}, default_stuck_after_ms=timedelta(minutes=1))
    now = datetime.now(UTC)
    for id, type, age in [
        ("old-order", "CreateOrderSaga", timedelta(minutes=6)),  # the seed's 5 min
        ("new-order", "CreateOrderSaga", timedelta(minutes=4)),
        ("quick", "QuickSaga", timedelta(seconds=5)),
        ("other", "OtherSaga", timedelta(minutes=2)),  # the default given here
        ("fresh", "OtherSaga", timedelta(seconds=1)),
    ]:
        await repo.save(SagaRecord(id, type, created_at=now - age, updated_at=now - age))
    done = SagaRecord("done", "QuickSaga", created_at=now - timedelta(hours=1), status=SagaStatus.COMPLETED)
    await repo.save(done)
    assert sorted(s.id for s in await repo.find_stuck_sagas()) == ["old-order", "other", "quick"]
    bad_settings: list[tuple[dict[str, Any], str]] = [
        ({"stuck_after_ms": {"T": 0}}, "stuck_after_ms"),
        ({"stuck_after_ms": [1]}, "stuck_after_ms"),
        ({"default_stuck_after_ms": -5}, "default_stuck_after_ms"),
        ({"finished_retention_ms": "1d"}, "finished_retention_ms"),
    ]
    for kwargs, argument in bad_settings:
        with pytest.raises((txcoord.InvalidArgumentError, txcoord.InvalidTypeError)) as e:
            RedisSagaRepository(url, **kwargs)
        assert e.value.argument == argument


async def test_finished_records_expire_after_the_retention(url: str, raw: redis.Redis) -> None:
    kept = RedisSagaRepository(url, finished_retention_ms=None)
    short = RedisSagaRepository(url, finished_retention_ms=60000)
    await kept.save(SagaRecord("forever", "T", status=SagaStatus.COMPLETED))
    await short.save(SagaRecord("minute", "T", status=SagaStatus.COMPLETED))
    assert raw.pttl("{txcoord:sagas}:saga:forever") == -1
    assert 0 < raw.pttl("{txcoord:sagas}:saga:minute") <= 60000


def test_the_blocking_repository_is_the_twin(url: str) -> None:
    repo = txcoord.sync.RedisSagaRepository(url)
    s = txcoord.sync.SagaRecord("sync-1", "UserRegistrationSaga")
    repo.save(s)
    got = repo.find_by_id("sync-1")
    assert got is not None and got.version == 1 and got.type == "UserRegistrationSaga"
    assert repo.save(got, expected_version=1) is True
    assert [r.id for r in repo.find_active_sagas()] == ["sync-1"]
    assert repo.find_stuck_sagas() == []
    assert repo.get_statistics().active == 1
    assert "txcoord.sync.RedisSagaRepository" in repr(repo)


async def test_async_repository_methods_return_coroutines(url: str) -> None:
    repo = RedisSagaRepository(url)
    task = asyncio.create_task(repo.get_statistics())
    assert (await task).active == 0
