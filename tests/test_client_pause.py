"""Writes of the module's threads while Redis's writes are paused (CLIENT PAUSE WRITE, a
master handing over in a cluster failover): Redis asserts, and crashes, when a module
thread's write is propagated meanwhile (to an AOF or a replica; hence appendonly here).
Worker runs wait, as a paused client would, and go on once the pause is over."""
import time

import pytest

from conftest import pyexecute, wait_until


@pytest.fixture
def aof(fresh_server):
    s = fresh_server(extra_args=["--appendonly", "yes"])
    yield s, s.client()
    assert s.alive(), "redis-server died:\n" + s.log()[-3000:]

SLEEPY_WRITE = """
def gen():
    import time
    time.sleep(0.3)
    yield 1
GB('PythonReader').foreach(lambda x: execute('set', 'paused:k', 'v')).run(gen)
"""


def test_a_worker_write_waits_out_a_pause(aof):
    server, r = aof
    eid = r.execute_command("RG.PYEXECUTE", SLEEPY_WRITE, "UNBLOCKING")
    other = server.client()
    assert other.execute_command("CLIENT", "PAUSE", "1500", "WRITE") == "OK"
    paused_at = time.monotonic()
    time.sleep(0.8)  # the job's write came due meanwhile
    assert r.get("paused:k") is None  # reads go on; the write waits
    assert server.alive()
    wait_until(lambda: r.get("paused:k") == "v", timeout=10, what="the write after the pause")
    assert time.monotonic() - paused_at >= 1.3
    results = r.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert results[1] == [], results
    assert r.ping()


def test_a_trigger_write_waits_out_a_pause(aof):
    server, r = aof
    # An async keyspace trigger fired by a read (keymiss) during the pause writes on a
    # worker: it waits too.
    code = ("GB().foreach(lambda x: execute('set', 'seen:' + x['key'], '1'))"
            ".register(prefix='miss:*', eventTypes=['keymiss'], mode='async_local')")
    assert pyexecute(r, code) == "OK"
    other = server.client()
    other.execute_command("CLIENT", "PAUSE", "1000", "WRITE")
    assert r.get("miss:1") is None
    time.sleep(0.3)
    assert r.exists("seen:miss:1") == 0 and server.alive()
    wait_until(lambda: r.get("seen:miss:1") == "1", timeout=10, what="the trigger's write")
