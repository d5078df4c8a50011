"""Guests that misbehave (DESIGN.md "Wasm hosting", issue: trap, endless loop, memory
bomb, endless recursion): each fails its own execution with a clear error, Redis keeps
serving and every other guest keeps working. The fault guests live in one crate
(tests/guests/faults)."""
import time

import pytest
import redis

from conftest import upload, wasmrun, wasmrun_ok, wait_until, pairs


@pytest.fixture
def faults(r):
    upload(r, "faults")
    upload(r, "genres")
    r.set("somekey", "v")
    r.hset("movie:1", "genres", "Drama,Comedy")
    return r


def still_fine(r):
    assert r.ping()
    assert wasmrun_ok(r, "faults", "fine") == ["fine"] * r.dbsize()
    assert len(wasmrun_ok(r, "genres", "count", "movie:*")) == 2


@pytest.mark.parametrize("job, config, message", [
    ("trap", [], "trapped"),
    ("spin", ["WasmMaxCallMillis", "200"], "time budget of 200 ms"),
    ("hog", ["WasmMaxMemoryMB", "16"], "memory cap of 16 MB"),
    ("recurse", [], "stack"),
    ("oob", [], "out of bounds"),
])
def test_fault_fails_its_execution_only(faults, job, config, message):
    r = faults
    if config:
        assert r.execute_command("RG.CONFIGSET", *config) == ["OK"]
    try:
        t0 = time.monotonic()
        results, errors = wasmrun(r, "faults", job)
        took = time.monotonic() - t0
        assert results == []
        assert len(errors) == 1 and message in errors[0], errors
        if job == "spin":
            assert took < 5, took
        still_fine(r)
        # the failed instance was dropped, the next run of the same job fails the same way
        assert message in wasmrun(r, "faults", job)[1][0]
        still_fine(r)
    finally:
        r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "500", "WasmMaxMemoryMB", "64")


def test_trap_error_carries_the_panic_message(faults):
    errors = wasmrun(faults, "faults", "trap")[1]
    assert "deliberate" in errors[0] or "panicked" in errors[0], errors


def test_abort_stops_a_spinning_async_guest(faults):
    r = faults
    r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "10000")
    try:
        eid = r.execute_command("RG.WASMRUN", "faults", "spin", "UNBLOCKING")
        wait_until(lambda: pairs(pairs(r.execute_command("RG.GETEXECUTION", eid)[0])[
            "execution_plan"])["status"] == "running", what="the job to run")
        t0 = time.monotonic()
        assert r.execute_command("RG.ABORTEXECUTION", eid) == "OK"
        wait_until(lambda: pairs(pairs(r.execute_command("RG.GETEXECUTION", eid)[0])[
            "execution_plan"])["status"] == "aborted", timeout=5, what="aborted")
        assert time.monotonic() - t0 < 2
        still_fine(r)
    finally:
        r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "500")


def test_ping_answers_while_a_guest_spins_on_a_worker(faults):
    r = faults
    r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "1500")
    try:
        eid = r.execute_command("RG.WASMRUN", "faults", "spin", "UNBLOCKING")
        t0 = time.monotonic()
        for _ in range(20):
            assert r.ping()
        assert time.monotonic() - t0 < 1.0
        reply = r.execute_command("RG.GETRESULTSBLOCKING", eid)
        assert "time budget of 1500 ms" in reply[1][0]
    finally:
        r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "500")


def test_limits_are_validated(r):
    reply = r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "0", "WasmMaxMemoryMB", "x")
    assert all(isinstance(x, redis.ResponseError) or "OK" not in str(x) for x in reply), reply
