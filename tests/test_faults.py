"""A panic anywhere in a run fails only that execution.

Each test starts a server with GEARS_TEST_PANIC=<point> (a test-only switch read at
load: the first run that reaches the point panics there, once). The client gets an error
reply, another client is served at once, RG.GETEXECUTION shows the execution failed with
the error, and the next execution succeeds.
"""

import time

import pytest
import redis

from conftest import RedisServer, pairs, upload

POINTS = ["reader", "step", "host-call", "reply"]

# A run that reads keys, calls Redis from a step and replies.
PY_RUN = "GB().map(lambda r: execute('GET', r['key'])).run()"


@pytest.fixture
def faulty():
    servers = []

    def make(point):
        s = RedisServer(env={"GEARS_TEST_PANIC": point}).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        alive, log = s.alive(), s.log()
        s.stop()
        assert alive, "redis-server died:\n" + log[-3000:]


def ping_ms(server):
    other = server.client()
    t = time.monotonic()
    assert other.ping()
    return (time.monotonic() - t) * 1000


def execution_plan(c, eid):
    """RG.GETEXECUTION's plan of execution `eid`."""
    shard = c.execute_command("RG.GETEXECUTION", eid)[0]
    return pairs(pairs(shard)["execution_plan"])


def failed_run(c, *command):
    """Runs `command` with UNBLOCKING (so that its execution is kept), expects the
    injected fault's error from its results; returns its id."""
    eid = c.execute_command(*command)
    with pytest.raises(redis.ResponseError, match="internal error"):
        c.execute_command("RG.GETRESULTSBLOCKING", eid)
    return eid


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_python_run_fails_alone(faulty, point, mode):
    s = faulty(point)
    c = s.client()
    c.mset({f"k{i}": f"v{i}" for i in range(50)})
    code = PY_RUN if mode == "async" else PY_RUN.replace(".run()", ".run(mode='sync')")
    eid = failed_run(c, "RG.PYEXECUTE", code, "UNBLOCKING")
    assert ping_ms(s) < 100
    plan = execution_plan(c, eid)
    assert plan["status"] == "done"
    assert any("internal error" in e and "injected fault" in e for e in plan["errors"]), plan
    # The next execution runs normally (the switch fires once).
    results, errors = c.execute_command("RG.PYEXECUTE", code)
    assert errors == []
    assert sorted(results) == sorted(f"v{i}" for i in range(50))
    assert "fault injection armed" in s.log()


@pytest.mark.parametrize("point", POINTS)
def test_guest_run_fails_alone(faulty, point):
    s = faulty(point)
    c = s.client()
    c.set("k", "v")
    upload(c, "kitchen")
    eid = failed_run(c, "RG.WASMRUN", "kitchen", "exec", "UNBLOCKING", "GET", "k")
    assert ping_ms(s) < 100
    plan = execution_plan(c, eid)
    assert plan["status"] == "done"
    assert any("internal error" in e for e in plan["errors"]), plan
    results, errors = c.execute_command("RG.WASMRUN", "kitchen", "exec", "GET", "k")
    assert errors == [] and len(results) == 1 and "v" in results[0], (results, errors)


def test_a_panicking_worker_gives_the_lock_back(faulty):
    """The panic comes inside atomic(), holding the Redis lock: it is given back at once."""
    s = faulty("host-call")
    c = s.client()
    c.set("k", "v")
    code = """
from gears import atomic
def f(r):
    with atomic():
        execute('GET', 'k')
    return r
GB('ShardsIDReader').map(f).run()
"""
    with pytest.raises(redis.ResponseError, match="internal error"):
        c.execute_command("RG.PYEXECUTE", code)
    for _ in range(5):
        assert ping_ms(s) < 100
    assert c.set("after", "1")


def test_a_sync_trigger_that_panics_fails_its_execution_not_the_command(faulty):
    s = faulty("step")
    c = s.client()
    c.execute_command(
        "RG.PYEXECUTE",
        "GB().foreach(lambda r: execute('INCR', 'seen')).register(prefix='user:*', mode='sync')",
    )
    assert c.set("user:1", "a")
    assert ping_ms(s) < 100
    assert c.set("user:2", "b")
    assert c.get("seen") == "1"
    reg = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])
    info = pairs(reg["RegistrationData"])
    assert info["numFailures"] == 1 and info["numSuccess"] == 1, info
    assert "internal error" in info["lastError"]
