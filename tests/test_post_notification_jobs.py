"""Sync triggers run in post-notification jobs where the server has them (Redis 7.2+,
Valkey 8), and inside the notification callback elsewhere (module/src/triggers/post_job.rs
says why, what stays the same and what differs).

Every test runs on three servers:
- `jobs`: Redis 7.4 (REDIS74_SERVER, set by `make test-blackbox`) or else Valkey 8.1
  (VALKEY_SERVER): sync triggers run in jobs;
- `hidden`: the same server with GEARS_TEST_WITHOUT=post-notification-jobs: the fallback;
- `redis-7.0`: Debian's redis-server, which has no jobs: the fallback.
What both paths guarantee is asserted the same on all three; what legitimately differs
(the order of a command's keys and a trigger's writes) is asserted per path.
"""
import glob
import os

import pytest

from conftest import RedisServer, dump_regs, register_id, upload, wait_until

REDIS70 = "/usr/bin/redis-server"
NEWER = next(
    (p for p in (os.environ.get("REDIS74_SERVER", ""), os.environ.get("VALKEY_SERVER", ""),
                 "/work/main/target/servers/redis-7.4/redis-server")
     if p and os.access(p, os.X_OK)),
    "",
)
HIDE = {"GEARS_TEST_WITHOUT": "post-notification-jobs"}

KINDS = {
    # name: (binary, env, whether sync triggers run in jobs)
    # (Its own empty GEARS_TEST_WITHOUT wins over a run's GEARS_SERVER_ENV.)
    "jobs": (NEWER, {"GEARS_TEST_WITHOUT": ""}, True),
    "hidden": (NEWER, HIDE, False),
    "redis-7.0": (REDIS70, None, False),
}


class Kind:
    def __init__(self, name):
        self.name = name
        self.binary, self.env, self.jobs = KINDS[name]

    def start(self, extra_args=(), **kwargs):
        if not (self.binary and os.access(self.binary, os.X_OK)):
            pytest.fail("no server with post-notification jobs: set REDIS74_SERVER or "
                        "VALKEY_SERVER (make test-blackbox does)")
        return RedisServer(binary=self.binary, env=self.env, extra_args=extra_args,
                           **kwargs).start()


@pytest.fixture(params=list(KINDS))
def kind(request):
    return Kind(request.param)


@pytest.fixture
def servers():
    started = []
    yield started
    for s in started:
        alive, log = s.alive(), s.log()
        s.stop()
        assert alive, "the server died during the test:\n" + log[-5000:]


@pytest.fixture
def r(kind, servers):
    s = kind.start()
    servers.append(s)
    c = s.client()
    yield c
    c.close()


def stats(r, rid):
    return dump_regs(r)[rid]["data"]


def test_the_log_says_whether_the_server_has_jobs(kind, servers):
    s = kind.start()
    servers.append(s)
    want = "post-notification-jobs " + ("yes" if kind.jobs else "no")
    wait_until(lambda: want in s.log(), timeout=5, what=want)


def test_a_trigger_on_one_key_of_mset_sees_the_other(r, kind):
    """A job runs after all of the command's notifications: both keys are written before
    either trigger runs. Inside the callback, the first key's trigger runs before MSET
    wrote the second key."""
    rid = register_id(r, "GB().foreach(lambda x: execute('set', 'seen:' + x['key'], "
                         "str(execute('get', 'm:b' if x['key'] == 'm:a' else 'm:a'))))"
                         ".register(prefix='m:*', mode='sync', readValue=False)")
    assert r.mset({"m:a": "1", "m:b": "2"})
    assert r.get("seen:m:b") == "1"
    assert r.get("seen:m:a") == ("2" if kind.jobs else "None")
    data = stats(r, rid)
    assert (data["numTriggered"], data["numSuccess"], data["numFailures"]) == (2, 2, 0)


def test_the_record_holds_the_value_its_event_wrote(r, kind):
    """The record is read when the event is raised, in both paths: a later command of the
    same transaction does not change what the trigger gets."""
    register_id(r, "GB().foreach(lambda x: execute('rpush', 'got', str(x['value'])))"
                   ".register(prefix='v:*', eventTypes=['set'], mode='sync')")
    p = r.pipeline(transaction=True)
    p.set("v:a", "first")
    p.set("v:a", "second")
    p.delete("v:a")
    p.execute()
    assert r.lrange("got", 0, -1) == ["first", "second"]


def test_chained_sync_registrations_fire_once_and_never_loop(r, kind):
    one = register_id(r, "GB().foreach(lambda x: execute('set', 'c2:' + x['key'], 'x'))"
                         ".register(prefix='c1:*', mode='sync', readValue=False)")
    two = register_id(r, "GB().foreach(lambda x: execute('set', 'c3:' + x['key'], 'y'))"
                         ".register(prefix='c2:*', mode='sync', readValue=False)")
    # It writes under its own prefix: its own writes never fire it again.
    loop = register_id(r, "GB().foreach(lambda x: execute('incr', 'loop:n'))"
                          ".register(prefix='loop:*', mode='sync', readValue=False)")
    r.set("c1:k", "v")
    assert r.get("c2:c1:k") == "x"
    assert r.get("c3:c2:c1:k") == "y"
    r.set("loop:a", "v")
    assert r.get("loop:n") == "1"
    assert stats(r, one)["numTriggered"] == 1
    assert stats(r, two)["numTriggered"] == 1
    assert stats(r, loop)["numTriggered"] == 1


def test_a_failing_sync_trigger_counts_and_the_command_stands(r, kind):
    rid = register_id(r, "GB().foreach(lambda x: execute('incr', 'f:text'))"
                         ".register(prefix='f:text', mode='sync', readValue=False)")
    assert r.set("f:text", "not a number")
    assert r.get("f:text") == "not a number"
    data = stats(r, rid)
    assert (data["numTriggered"], data["numSuccess"], data["numFailures"]) == (1, 0, 1)
    assert "not an integer" in data["lastError"]


def test_an_async_run_writes_wake_a_sync_registration(r, kind):
    register_id(r, "GB().foreach(lambda x: execute('set', 'w2:' + x['key'], 'a'))"
                   ".register(prefix='w1:*', mode='async', readValue=False)")
    register_id(r, "GB().foreach(lambda x: execute('set', 'w3:' + x['key'], 's'))"
                   ".register(prefix='w2:*', mode='sync', readValue=False)")
    r.set("w1:k", "v")
    wait_until(lambda: r.get("w3:w2:w1:k") == "s", timeout=10, what="the chained sync write")


def test_inside_multi_a_trigger_writes_as_documented(r, kind):
    """With jobs, a sync trigger's write lands after the transaction's commands: a read
    later in the same MULTI does not see it. Inside the callback it lands right after the
    command that caused it."""
    register_id(r, "GB().foreach(lambda x: execute('set', 'copy:' + x['key'], x['value']))"
                   ".register(prefix='t:*', mode='sync')")
    p = r.pipeline(transaction=True)
    p.set("t:a", "1")
    p.get("copy:t:a")
    _, seen = p.execute()
    assert seen == (None if kind.jobs else "1")
    assert r.get("copy:t:a") == "1"
    # A Lua script is one execution unit too.
    seen = r.eval("redis.call('set', KEYS[1], '2'); return redis.call('get', 'copy:' .. KEYS[1])",
                  1, "t:b")
    assert seen == (None if kind.jobs else "2")
    assert r.get("copy:t:b") == "2"


def aof_commands(server):
    """The commands of the server's AOF (its incremental files), in order."""
    out = []
    for path in sorted(glob.glob(os.path.join(server.dir, "appendonlydir", "*.incr.aof"))):
        with open(path, "rb") as f:
            lines = f.read().split(b"\r\n")
        i = 0
        while i < len(lines) and lines[i].startswith(b"*"):
            n = int(lines[i][1:])
            args = [lines[i + 2 + 2 * j].decode() for j in range(n)]
            out.append(args)
            i += 1 + 2 * n
    return out


def test_replica_and_aof_get_the_trigger_writes_with_the_command(kind, servers):
    master = kind.start(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    servers.append(master)
    replica = kind.start(extra_args=["--replicaof", "127.0.0.1", str(master.port)])
    servers.append(replica)
    m, rep = master.client(), replica.client()
    wait_until(lambda: m.info("replication")["connected_slaves"] == 1
               and rep.info("replication")["master_link_status"] == "up",
               timeout=20, what="the replica to sync")
    register_id(m, "GB().foreach(lambda x: execute('set', 'copy:' + x['key'], x['value']))"
                   ".register(prefix='rep:*', mode='sync')")
    m.set("rep:a", "1")
    wait_until(lambda: rep.get("copy:rep:a") == "1", timeout=10, what="the replica's copy")
    assert rep.get("rep:a") == "1"
    # No trigger fires on the replica: the copy came from the master's stream.
    assert rep.get("copy:copy:rep:a") is None

    cmds = aof_commands(master)
    start = next(i for i, c in enumerate(cmds) if c[1:2] in (["rep:a"], ["copy:rep:a"])) - 1
    unit = cmds[start:start + 4]
    writes = [[c[0].lower()] + c[1:] for c in unit if c[0].lower() == "set"]
    assert [c[0].lower() for c in unit] == ["multi", "set", "set", "exec"], cmds
    # With jobs the command comes first, then the trigger's write. Inside the callback the
    # trigger's write is propagated first (it ends before the command is).
    if kind.jobs:
        assert writes == [["set", "rep:a", "1"], ["set", "copy:rep:a", "1"]], unit
    else:
        assert writes == [["set", "copy:rep:a", "1"], ["set", "rep:a", "1"]], unit


def test_a_sync_wasm_trigger_runs_the_same_way(r, kind):
    """The kitchen guest's sync KeysReader registration (SADD wasm_seen <key> on wsync:*)."""
    upload(r, "kitchen")
    p = r.pipeline(transaction=True)
    p.set("wsync:1", "x")
    p.sismember("wasm_seen", "wsync:1")
    _, seen = p.execute()
    assert seen == (0 if kind.jobs else 1)
    assert r.smembers("wasm_seen") == {"wsync:1"}
    r.set("wsync:2", "y")
    assert r.smembers("wasm_seen") == {"wsync:1", "wsync:2"}
    data = next(d["data"] for d in dump_regs(r).values() if d["args"].get("regex") == "wsync:*")
    assert (data["numTriggered"], data["numSuccess"]) == (2, 2)
