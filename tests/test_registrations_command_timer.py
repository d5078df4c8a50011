"""Black-box tests of CommandReader (trigger=) and TimeReader registrations.

SPEC.md "Readers" (CommandReader, TimeReader) and "Commands" (RG.TRIGGER, RG.TRIGGERONKEY,
RG.DUMPREGISTRATIONS, RG.UNREGISTER, RG.PAUSEREGISTRATIONS). Hooks (register(hook=...))
are not built yet and are not tested here.

Tests on the shared server use their own trigger names and keys; every registration is
removed after each test (`clean`). Timer effects are observed by polling with a deadline;
"nothing happened" checks wait a fixed time and can only miss a bug, never fail a correct
module. Timing bounds are generous and one-sided where possible.
"""
import ast
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import pyexecute, wait_until, dump_regs, register_id


# ---------------------------------------------------------------------------- helpers

def trigger(c, *args):
    return c.execute_command("RG.TRIGGER", *args)


def nc_client(s, timeout=10):
    return s.client(socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


# ============================================================================ CommandReader

@pytest.mark.parametrize("mode", ["async", "async_local", "sync"])
def test_trigger_record_and_reply(r, mode):
    rid = register_id(r, f"GB('CommandReader').register(trigger='rec_{mode}', mode='{mode}')")
    assert trigger(r, f"rec_{mode}", "a", "b") == [str([f"rec_{mode}", "a", "b"])]
    assert trigger(r, f"rec_{mode}") == [str([f"rec_{mode}"])]
    d = dump_regs(r)[rid]
    assert d["reader"] == "CommandReader"
    assert d["data"]["mode"] == mode
    assert d["args"]["trigger"] == f"rec_{mode}"
    assert d["data"]["numTriggered"] == 2
    assert d["data"]["numSuccess"] == 2


def test_trigger_results_flat_array_of_strings(r):
    register_id(r, "GB('CommandReader').flatmap(lambda x: x).register(trigger='flat')")
    assert trigger(r, "flat", "a", "b", "c") == ["flat", "a", "b", "c"]
    register_id(r, "GB('CommandReader').flatmap(lambda x: list(range(len(x)))).register(trigger='nums')")
    # default map(str): results are strings, not integers
    assert trigger(r, "nums", "x", "y") == ["0", "1", "2"]
    register_id(r, "GB('CommandReader').filter(lambda x: False).register(trigger='none')")
    assert trigger(r, "none", "x") == []


def test_trigger_args_are_strings_and_binary_safe(r):
    register_id(
        r,
        "GB('CommandReader').map(lambda x: '|'.join(type(a).__name__ + ':' + a for a in x))"
        ".register(trigger='types')",
    )
    assert trigger(r, "types", 12, "héllo", "with space", "") == [
        "str:types|str:12|str:héllo|str:with space|str:"
    ]


def test_trigger_convert_to_str_false(r):
    register_id(
        r,
        "GB('CommandReader').map(lambda x: len(x)).register(trigger='raw', convertToStr=False)",
    )
    assert trigger(r, "raw", "a", "b") == [3]


def test_trigger_writes_and_counts(r):
    register_id(
        r,
        "GB('CommandReader').map(lambda x: execute('incrby', 'tcount', x[1]))"
        ".register(trigger='incr')",
    )
    assert trigger(r, "incr", "5") == ["5"]
    assert trigger(r, "incr", "2") == ["7"]
    assert r.get("tcount") == "7"


def test_trigger_error_reply(r):
    code = (
        "def f(a):\n"
        "    if a.startswith('bad'):\n"
        "        raise Exception('err-' + a)\n"
        "    return a\n"
        "rid = GB('CommandReader').flatmap(lambda x: x[1:]).map(f).register(trigger='err')\n"
        "execute('set', '__rid__', rid)\n"
    )
    assert pyexecute(r, code) == "OK"
    rid = r.get("__rid__")
    with pytest.raises(redis.ResponseError) as e:
        trigger(r, "err", "ok", "bad1", "bad2")
    assert "err-bad1" in str(e.value)
    # the registration keeps working
    assert trigger(r, "err", "ok", "fine") == ["ok", "fine"]
    data = dump_regs(r)[rid]["data"]
    assert data["numFailures"] == 1 and data["numSuccess"] == 1, data
    assert "err-bad1" in (data["lastError"] or ""), data


def test_trigger_unknown_and_arity(r):
    with pytest.raises(redis.ResponseError):
        trigger(r, "no_such_trigger", "a")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.TRIGGER")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.TRIGGERONKEY", "no_such_trigger", "k")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.TRIGGERONKEY")


def test_duplicate_trigger_name(r):
    rid = register_id(r, "GB('CommandReader').map(lambda x: 'first').register(trigger='dup')")
    with pytest.raises(redis.ResponseError) as e:
        pyexecute(r, "GB('CommandReader').map(lambda x: 'second').register(trigger='dup')")
    assert "trigger already registered" in str(e.value)
    assert list(dump_regs(r)) == [rid]  # nothing half-made
    assert trigger(r, "dup") == ["first"]
    # also refused with another mode
    with pytest.raises(redis.ResponseError) as e:
        pyexecute(r, "GB('CommandReader').register(trigger='dup', mode='sync')")
    assert "trigger already registered" in str(e.value)
    assert trigger(r, "dup") == ["first"]


def test_unregister_frees_trigger_name(r):
    rid = register_id(r, "GB('CommandReader').map(lambda x: 'one').register(trigger='re')")
    assert trigger(r, "re") == ["one"]
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    with pytest.raises(redis.ResponseError):
        trigger(r, "re")
    register_id(r, "GB('CommandReader').map(lambda x: 'two').register(trigger='re')")
    assert trigger(r, "re") == ["two"]


def test_triggeronkey(r):
    register_id(r, "GB('CommandReader').register(trigger='onkey')")
    assert r.execute_command("RG.TRIGGERONKEY", "onkey", "mykey", "a", "b") == [
        str(["onkey", "mykey", "a", "b"])
    ]
    assert r.execute_command("RG.TRIGGERONKEY", "onkey", "k2") == [str(["onkey", "k2"])]
    register_id(
        r, "GB('CommandReader').map(lambda x: execute('set', x[1], x[2])).register(trigger='setter')"
    )
    assert r.execute_command("RG.TRIGGERONKEY", "setter", "tk", "tv") == ["OK"]
    assert r.get("tk") == "tv"
    # declared with the key as its first key (so cluster clients route it)
    info = r.execute_command("COMMAND", "INFO", "RG.TRIGGERONKEY")
    info = info.get("rg.triggeronkey") or info.get("RG.TRIGGERONKEY")
    assert info["first_key_pos"] == 2, info


def test_trigger_concurrent_clients(r, server):
    register_id(
        r,
        "GB('CommandReader').map(lambda x: x[1] + ':' + str(execute('incr', 'cc:' + x[1])))"
        ".register(trigger='conc')",
    )
    errors = []

    def worker(t):
        c = nc_client(server)
        try:
            for i in range(40):
                arg = f"{t}-{i}"
                got = trigger(c, "conc", arg)
                if got != [f"{arg}:1"]:
                    errors.append((arg, got))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert len(r.keys("cc:*")) == 160


SERVED_WHILE_SLEEPING = """
import time
def served():
    for line in execute('info', 'stats').split('\\n'):
        if line.startswith('total_commands_processed:'):
            return int(line.strip().split(':')[1])
def step(x):
    before = served()
    time.sleep(1.5)  # pure Python, no Redis access: Redis must keep serving clients
    execute('rpush', 'served', served() - before)
    return 'done'
"""


@pytest.mark.parametrize("reader", ["CommandReader", "TimeReader"])
def test_async_step_does_not_block_redis(r, server, reader):
    """An async execution holds the Redis lock only while it touches Redis (LockSliceMicros):
    while its step sleeps in Python for 1.5 s, the commands this client keeps sending
    (about one per 10 ms) are served. A module that holds the lock for the whole step serves
    none of them until the step is over."""
    th = None
    if reader == "CommandReader":
        register_id(r, SERVED_WHILE_SLEEPING + "\nGB('CommandReader').map(step).register(trigger='sleeper')")
        c = nc_client(server)
        th = threading.Thread(target=lambda: trigger(c, "sleeper"), daemon=True)
        th.start()
    else:
        register_id(r, SERVED_WHILE_SLEEPING + "\nGB('TimeReader').map(step).register(interval=1000)")
    deadline = time.monotonic() + 15
    while not r.llen("served"):
        assert time.monotonic() < deadline, "step never finished"
        time.sleep(0.01)
    n = int(r.lindex("served", 0))
    if th is not None:
        th.join(10)
        c.close()
    assert n >= 10, f"Redis served only {n} commands during a 1.5 s async {reader} step"


def test_pause_refused_for_command_and_time_registrations(r):
    crid = register_id(r, "GB('CommandReader').register(trigger='np')")
    trid = register_id(r, "GB('TimeReader').foreach(lambda x: None).register(interval=100000)")
    for rid in (crid, trid):
        with pytest.raises(redis.ResponseError):
            r.execute_command("RG.PAUSEREGISTRATIONS", rid)
        with pytest.raises(redis.ResponseError):
            r.execute_command("RG.UNPAUSEREGISTRATIONS", rid)
    assert trigger(r, "np", "x") == [str(["np", "x"])]


def test_command_reader_has_no_run(r):
    with pytest.raises(redis.ResponseError) as e:
        pyexecute(r, "GB('CommandReader').run()")
    assert "reader do not support run" in str(e.value)
    with pytest.raises(redis.ResponseError):
        pyexecute(r, "GB('CommandReader').register()")  # neither trigger nor hook


# ============================================================================ TimeReader

TICK_LOG = "GB('TimeReader').foreach(lambda x: execute('rpush', '{key}', str(x)))"


def ticks(c, key):
    return [ast.literal_eval(x) for x in c.lrange(key, 0, -1)]


@pytest.mark.parametrize("mode", ["async", "async_local", "sync"])
def test_timer_record_and_first_tick(r, mode):
    interval = 400
    t_before = time.time() * 1000
    rid = register_id(r, TICK_LOG.format(key="tl") + f".register(interval={interval}, mode='{mode}')")
    wait_until(lambda: r.llen("tl") >= 4, timeout=10, what="4 ticks")
    recs = ticks(r, "tl")
    for rec in recs:
        assert set(rec) == {"time", "tick"}, rec
        assert isinstance(rec["time"], int) and isinstance(rec["tick"], int), rec
    assert [x["tick"] for x in recs[:4]] == [0, 1, 2, 3]
    first = recs[0]["time"]
    # the first tick comes within one interval of registration (150 ms of slack)
    assert t_before - 50 <= first <= t_before + interval + 150, (first - t_before, interval)
    times = [x["time"] for x in recs]
    assert times == sorted(times)
    # ticks are spaced by the interval (not a burst)
    assert (times[3] - times[0]) / 3 >= interval * 0.8, times
    d = dump_regs(r)[rid]
    assert d["reader"] == "TimeReader"
    assert d["data"]["mode"] == mode
    assert d["args"].get("interval") == interval, d["args"]


def test_timer_skips_ticks_while_execution_runs(r):
    interval = 100
    prelude = (
        "import time\n"
        "def slow(x):\n"
        "    s = time.time()\n"
        "    time.sleep(0.3)\n"
        "    execute('rpush', 'spans', '%f,%f' % (s, time.time()))\n"
    )
    t0 = time.time()
    rid = register_id(r, prelude + f"\nGB('TimeReader').foreach(slow).register(interval={interval})")
    wait_until(lambda: r.llen("spans") >= 5, timeout=15, what="5 slow executions")
    elapsed_ms = (time.time() - t0) * 1000
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    spans = sorted(tuple(map(float, x.split(","))) for x in r.lrange("spans", 0, -1))
    # about one execution per 300-400 ms, never one per tick
    assert len(spans) <= 0.6 * elapsed_ms / interval, (len(spans), elapsed_ms)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s2 >= e1 - 0.005, f"two executions overlapped: {(s1, e1)} and {(s2, e2)}"
    # after unregister, no queued backlog of executions keeps running
    n = r.llen("spans")
    time.sleep(1.0)
    assert r.llen("spans") <= n + 1  # at most the one running at unregister


def test_timer_failure_keeps_ticking(r):
    rid = register_id(
        r,
        "GB('TimeReader').foreach(lambda x: execute('incr', 'fails')).map(lambda x: 1 / 0)"
        ".register(interval=100)",
    )
    wait_until(lambda: int(r.get("fails") or 0) >= 3, timeout=10, what="3 failing ticks")
    data = dump_regs(r)[rid]["data"]
    assert data["numFailures"] >= 2, data
    assert "ZeroDivisionError" in (data["lastError"] or ""), data


def test_timer_unregister_stops(r):
    rid = register_id(r, "GB('TimeReader').foreach(lambda x: execute('incr', 'uticks')).register(interval=50)")
    wait_until(lambda: int(r.get("uticks") or 0) >= 3, what="ticks")
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    time.sleep(0.2)  # an execution already running may still finish
    n = int(r.get("uticks"))
    time.sleep(0.5)
    assert int(r.get("uticks")) == n
    assert rid not in dump_regs(r)


def test_timer_bad_interval(r):
    for bad in ["0", "-5", "'abc'", "None", "1.5"]:
        with pytest.raises(redis.ResponseError):
            pyexecute(r, f"GB('TimeReader').register(interval={bad})")
    assert dump_regs(r) == {}
    with pytest.raises(redis.ResponseError) as e:
        pyexecute(r, "GB('TimeReader').run()")
    assert "reader do not support run" in str(e.value)


RUNID_PRELUDE = """
def runid():
    for line in execute('info', 'server').split('\\n'):
        if line.startswith('run_id:'):
            return line.strip().split(':')[1]
"""


def test_timer_survives_save_and_restart(fresh_server):
    s = fresh_server()
    c = nc_client(s)
    rid = register_id(
        c,
        RUNID_PRELUDE
        + "\nGB('TimeReader').foreach(lambda x: execute('rpush', 'rt:' + runid(), x['tick']))"
        ".register(interval=100)",
    )
    run1 = c.info("server")["run_id"]
    wait_until(lambda: c.llen("rt:" + run1) >= 3, what="ticks before restart")
    assert c.lrange("rt:" + run1, 0, 2) == ["0", "1", "2"]
    assert c.save()
    c.close()
    s.proc.terminate()
    s.proc.wait(10)
    s.start()
    c = nc_client(s)
    run2 = c.info("server")["run_id"]
    assert run2 != run1
    assert rid in dump_regs(c), "timer registration lost across SAVE + restart"
    wait_until(lambda: c.llen("rt:" + run2) >= 3, timeout=10, what="ticks after restart")
    after = [int(x) for x in c.lrange("rt:" + run2, 0, -1)]
    assert after[0] == 0, f"tick did not count from 0 again after the load: {after[:5]}"
    assert after == sorted(after) and len(set(after)) == len(after), after
    c.close()


def test_timer_never_fires_on_replica(fresh_server):
    primary = fresh_server(extra_args=["--repl-diskless-sync-delay", "0"])
    p = nc_client(primary)
    rid = register_id(p, "GB('TimeReader').foreach(lambda x: execute('incr', 'ticks')).register(interval=50)")
    wait_until(lambda: int(p.get("ticks") or 0) >= 2, what="ticks on the primary")
    replica = fresh_server(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
    rc = nc_client(replica)
    wait_until(lambda: rc.info("replication").get("master_link_status") == "up",
               timeout=20, what="replication link up")
    wait_until(lambda: rid in dump_regs(rc), what="registration on the replica")
    # the primary keeps ticking and its writes arrive on the replica
    base = int(rc.get("ticks") or 0)
    wait_until(lambda: int(rc.get("ticks") or 0) >= base + 10, what="replicated ticks")
    rdata = dump_regs(rc)[rid]["data"]
    assert rdata["numTriggered"] == 0, f"timer fired on the replica: {rdata}"
    assert rdata["numSuccess"] == 0 and rdata["numFailures"] == 0, rdata
    assert dump_regs(p)[rid]["data"]["numTriggered"] >= 10
    # once promoted, the former replica is a primary and its timer fires
    primary.proc.terminate()
    primary.proc.wait(10)
    assert rc.execute_command("REPLICAOF", "NO", "ONE") == "OK"
    wait_until(lambda: dump_regs(rc)[rid]["data"]["numTriggered"] >= 2, timeout=10,
               what="timer firing on the promoted replica")
    p.close()
    rc.close()
