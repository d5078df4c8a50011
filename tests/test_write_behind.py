"""Events chained on the writes of sync triggers: a sync trigger's own writes reach the
registrations on the keys and streams it wrote.

Redis does not notify a module's notification callback about the writes made inside it, so
a sync trigger that XADDs to a stream never woke the stream's registration, and its SETs
never fired keyspace registrations. The module now delivers those events itself: once
each, in the order of the writes, after the run that wrote them, inside the same command.
A registration is not fired again by its own writes (nor by those of what it fired), so no
chain recurses.

The write-behind pattern is the main case: a sync registration captures every change into
a stream, a batched StreamReader registration drains it.

Every test runs on Debian's Redis 7.0 and on Valkey 8.1 (VALKEY_SERVER, fetched by `make
test`), whose module APIs differ but skip a subscriber inside its own callback alike.
"""
import os
import time

import pytest

from conftest import RedisServer, dump_regs, pyexecute, register_id, wait_until

VALKEY = os.environ.get("VALKEY_SERVER", "")


@pytest.fixture(scope="module", params=["redis-7.0", "valkey-8.1"])
def server(request):
    """The shared server of this file (the conftest `r` fixture uses it), once per kind."""
    binary = None
    if request.param.startswith("valkey"):
        if not (VALKEY and os.access(VALKEY, os.X_OK)):
            pytest.fail("VALKEY_SERVER is not set to a valkey-server binary (make test fetches one)")
        binary = VALKEY
    s = RedisServer(binary=binary).start()
    yield s
    alive, log = s.alive(), s.log()
    s.stop()
    assert alive, "the server died during the tests:\n" + log[-5000:]


def stats(r, rid):
    return dump_regs(r)[rid]["data"]


# ---------------------------------------------------------------------------- write-behind

CAPTURE = ("GB().foreach(lambda x: execute('XADD', 'wb:q', '*', 'k', x['key']))"
           ".register(prefix='user:*', mode='sync', readValue=False)")
WRITER = ("GB('StreamReader')"
          ".foreach(lambda x: (execute('HINCRBY', 'wb:seen', x['value']['k'], 1),"
          " execute('RPUSH', 'wb:order', x['value']['k']), execute('INCR', 'wb:n')))"
          ".register(prefix='wb:q', batch=100, duration=100)")


def test_write_behind_processes_every_captured_message_once_in_order(r):
    n = 10_000
    # The stream exists, empty, before the writer registers, and the writer's timer has
    # already looked at it (it made its group there): from then on only the events of the
    # capture's XADDs can start the writer's batches.
    r.xgroup_create("wb:q", "probe", id="$", mkstream=True)
    r.xgroup_destroy("wb:q", "probe")
    writer = register_id(r, WRITER)
    wait_until(lambda: any(g["name"] == f"__gears_{writer}" for g in r.xinfo_groups("wb:q")),
               what="the writer to look at the stream")
    capture = register_id(r, CAPTURE)

    keys = [f"user:{i}" for i in range(n)]
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, "v")
    assert all(pipe.execute())

    # No outside write to the stream from here on.
    wait_until(lambda: r.get("wb:n") == str(n), timeout=2.0,
               what=f"{n} messages processed within 2 s of the last SET")
    wait_until(lambda: r.xlen("wb:q") == 0, what="the stream acknowledged and trimmed")
    assert r.get("wb:n") == str(n)
    seen = r.hgetall("wb:seen")
    assert len(seen) == n
    assert {v for v in seen.values()} == {"1"}, "a message was processed twice"
    assert r.lrange("wb:order", 0, -1) == keys
    assert stats(r, capture)["numTriggered"] == n
    assert stats(r, writer)["numFailures"] == 0


# ---------------------------------------------------------------------------- keyspace chains

def test_keyspace_registration_chained_on_sync_writes_fires_once_per_write_in_order(r):
    # Each source write makes two writes; the chained registration logs what it saw.
    pyexecute(r, "GB().foreach(lambda x: ("
                 "execute('SET', 'kc:dst:' + x['key'][7:], x['value']),"
                 " execute('SET', 'kc:dst:' + x['key'][7:] + ':copy', x['value'])))"
                 ".register(prefix='kc:src:*', mode='sync')")
    logged = register_id(r, "GB().foreach(lambda x: execute('RPUSH', 'kc:log', x['key'] + '=' + x['value']))"
                            ".register(prefix='kc:dst:*', mode='sync')")
    counted = register_id(r, "GB().foreach(lambda x: execute('HINCRBY', 'kc:count', x['key'], 1))"
                             ".register(prefix='kc:dst:*')")
    writes = [("1", "a"), ("2", "b"), ("1", "c")]
    for k, v in writes:
        r.set(f"kc:src:{k}", v)
    expected = []
    for k, v in writes:
        expected += [f"kc:dst:{k}={v}", f"kc:dst:{k}:copy={v}"]
    # Sync: done when the source SET returns.
    assert r.lrange("kc:log", 0, -1) == expected
    assert stats(r, logged)["numTriggered"] == len(expected)
    # Async: once per write as well.
    want = {"kc:dst:1": "2", "kc:dst:1:copy": "2", "kc:dst:2": "1", "kc:dst:2:copy": "1"}
    wait_until(lambda: r.hgetall("kc:count") == want, what="the async chained registration")
    assert stats(r, counted)["numTriggered"] == len(expected)


def test_a_chain_of_sync_registrations_reaches_a_stream(r):
    pyexecute(r, "GB().foreach(lambda x: execute('SET', 'c3:b:' + x['key'][5:], 1))"
                 ".register(prefix='c3:a:*', mode='sync')")
    pyexecute(r, "GB().foreach(lambda x: execute('SET', 'c3:c:' + x['key'][5:], 1))"
                 ".register(prefix='c3:b:*', mode='sync')")
    pyexecute(r, "GB().foreach(lambda x: execute('XADD', 'c3:q', '*', 'k', x['key']))"
                 ".register(prefix='c3:c:*', mode='sync')")
    pyexecute(r, "GB('StreamReader').foreach(lambda x: execute('RPUSH', 'c3:log', x['value']['k']))"
                 ".register(prefix='c3:q')")
    for i in range(5):
        r.set(f"c3:a:{i}", 1)
    wait_until(lambda: r.llen("c3:log") == 5, what="the end of the chain")
    assert r.lrange("c3:log", 0, -1) == [f"c3:c:{i}" for i in range(5)]


def test_registrations_with_commands_see_only_what_the_clients_command_did(r):
    # commands= holds the client until its registrations ran: it is about the client's own
    # command, not about what a trigger wrote meanwhile.
    held = register_id(r, "GB().foreach(lambda x: execute('INCR', 'cm:held'))"
                          ".register(prefix='cm:t:*', commands=['hset'], mode='sync')")
    pyexecute(r, "GB().foreach(lambda x: execute('HSET', 'cm:t:' + x['key'][5:], 'f', 'v'))"
                 ".register(prefix='cm:s:*', mode='sync')")
    r.hset("cm:s:1", "f", "v")
    assert r.hget("cm:t:1", "f") == "v"
    assert r.get("cm:held") is None
    r.hset("cm:t:2", "f", "v")
    assert r.get("cm:held") == "1"
    assert stats(r, held)["numTriggered"] == 1


# ---------------------------------------------------------------------------- no recursion

def test_a_registration_is_not_fired_by_its_own_writes(r):
    own = register_id(r, "GB().foreach(lambda x: (execute('SET', x['key'] + ':x', 1),"
                         " execute('INCR', 'self-runs')))"
                         ".register(prefix='self:*', mode='sync')")
    r.set("self:1", "v")
    assert r.get("self:1:x") == "1"
    assert not r.exists("self:1:x:x")
    assert r.get("self-runs") == "1"
    assert stats(r, own)["numTriggered"] == 1
    assert r.ping()


def test_two_registrations_writing_each_others_keys_fire_once_each(r):
    pyexecute(r, "GB().foreach(lambda x: (execute('SET', 'mb:' + x['key'][3:], 'from-a'),"
                 " execute('INCR', 'runs-a'))).register(prefix='ma:*', mode='sync')")
    pyexecute(r, "GB().foreach(lambda x: (execute('SET', 'ma:' + x['key'][3:], 'from-b'),"
                 " execute('INCR', 'runs-b'))).register(prefix='mb:*', mode='sync')")
    r.set("ma:1", "client")
    # a fired on the client's write, b on a's; b's write to ma:1 does not fire a again.
    assert (r.get("runs-a"), r.get("runs-b")) == ("1", "1")
    assert (r.get("ma:1"), r.get("mb:1")) == ("from-b", "from-a")
    r.set("mb:2", "client")
    assert (r.get("runs-a"), r.get("runs-b")) == ("2", "2")
    assert r.ping()


def test_a_sync_stream_registration_feeding_its_own_stream_leaves_redis_responsive(r):
    # Every message adds one: a loop without end by design. It must not recurse (it
    # crashed Redis) nor hold Redis: it goes on in bounded bursts.
    pyexecute(r, "GB('StreamReader').foreach(lambda x: (execute('INCR', 'loop:n'),"
                 " execute('XADD', 'loop:q', '*', 'k', 'v')))"
                 ".register(prefix='loop:q', mode='sync')")
    r.xadd("loop:q", {"k": "v"})
    wait_until(lambda: int(r.get("loop:n") or 0) >= 2000, what="the loop to go on")
    for _ in range(5):
        started = time.monotonic()
        assert r.ping()
        assert time.monotonic() - started < 1.0
