"""Black-box tests of StreamReader registrations (GB('StreamReader').register()).

SPEC.md "Readers" (StreamReader), "Commands" (RG.DUMPREGISTRATIONS, RG.PAUSEREGISTRATIONS,
RG.UNPAUSEREGISTRATIONS, RG.UNREGISTER), RECIPES.md recipe 3, and the stream guarantee:
no accepted message is lost across a SIGKILL (at least once in every mode), none applied
twice in sync mode.

Tests on the shared server use their own stream names, and every registration is removed
after each test (`clean`). Async effects are only observed by polling with a deadline
(wait_until); "nothing happened" checks wait a short fixed time and can only miss a bug,
never fail a correct module.
"""
import ast
import os
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import ROOT, pyexecute, wait_until, dump_regs, register_id

RECIPE3 = os.path.join(ROOT, "recipes", "python", "stream_to_keys.py")
QUIET = 0.4  # seconds to wait before asserting that something did NOT happen


# ---------------------------------------------------------------------------- helpers

def reg(r, rid):
    regs = dump_regs(r)
    assert rid in regs, (rid, list(regs))
    return regs[rid]


def status(r, rid):
    return reg(r, rid)["data"]["status"]


def logger(logkey, what="x['id']"):
    return f".foreach(lambda x: execute('rpush', '{logkey}', {what}))"


def nc_client(s, timeout=10):
    """A client that does not retry (redis-py 8 retries by default)."""
    return s.client(socket_timeout=timeout, retry=Retry(NoBackoff(), 0))


# ---------------------------------------------------------------------------- records / matching

def test_record_shape_and_order(r):
    rid = register_id(r, "GB('StreamReader')" + logger("log", "str(x)") + ".register(prefix='shape')")
    ids = [r.xadd("shape", {"f": str(i), "g": "w"}) for i in range(5)]
    wait_until(lambda: r.llen("log") == 5, what="5 records")
    recs = [ast.literal_eval(x) for x in r.lrange("log", 0, -1)]
    assert recs == [
        {"key": "shape", "id": ids[i], "value": {"f": str(i), "g": "w"}} for i in range(5)
    ]
    d = reg(r, rid)
    assert d["reader"] == "StreamReader"
    # one execution per batch; a batch may hold several messages that were waiting
    wait_until(lambda: r.xlen("shape") == 0, what="all acknowledged and trimmed")
    wait_until(lambda: reg(r, rid)["data"]["numSuccess"] >= 1, what="numSuccess")
    data = reg(r, rid)["data"]
    assert 1 <= data["numSuccess"] == data["numTriggered"] <= 5, data
    assert data["numFailures"] == 0, data


def test_existing_messages_are_processed(r):
    ids = [r.xadd("pre", {"n": str(i)}) for i in range(3)]
    ids += [r.xadd("pre:x", {"n": str(i)}) for i in range(2)]
    register_id(r, "GB('StreamReader')" + logger("log") + ".register(prefix='pre*')")
    wait_until(lambda: r.llen("log") == 5, what="messages present before register")
    assert sorted(r.lrange("log", 0, -1)) == sorted(ids)
    # and new ones after
    ids.append(r.xadd("pre", {"n": "new"}))
    wait_until(lambda: r.llen("log") == 6, what="new message")
    assert sorted(r.lrange("log", 0, -1)) == sorted(ids)


def test_prefix_and_exact_name(r):
    register_id(r, "GB('StreamReader')" + logger("plog", "x['key']") + ".register(prefix='sp:*')")
    register_id(r, "GB('StreamReader')" + logger("elog", "x['key']") + ".register(prefix='exact')")
    for k in ["sp:a", "sp:b", "spx", "other", "exact", "exactly", "exac"]:
        r.xadd(k, {"f": "v"})
    wait_until(lambda: r.llen("plog") == 2 and r.llen("elog") == 1, what="matching streams")
    time.sleep(QUIET)
    assert sorted(r.lrange("plog", 0, -1)) == ["sp:a", "sp:b"]
    assert r.lrange("elog", 0, -1) == ["exact"]
    for k in ["spx", "other", "exactly", "exac"]:
        assert r.xlen(k) == 1, k  # nobody consumed (or trimmed) them


@pytest.mark.parametrize("mode", ["async", "async_local", "sync"])
def test_modes_process_every_message(r, mode):
    rid = register_id(
        r, "GB('StreamReader')" + logger("log") + f".register(prefix='m', mode='{mode}')"
    )
    ids = []
    for i in range(20):
        ids.append(r.xadd("m", {"n": str(i)}))
        if mode == "sync":
            # runs inside the XADD: visible when XADD replies
            assert r.lrange("log", 0, -1) == ids
    wait_until(lambda: r.llen("log") == 20, what="20 records")
    assert r.lrange("log", 0, -1) == ids  # in stream order, once each
    wait_until(lambda: r.xlen("m") == 0, what="trimmed stream")
    assert reg(r, rid)["data"]["mode"] == mode


def test_register_returns_ok_and_on_registered(r):
    code = (
        "GB('StreamReader').foreach(lambda x: None)"
        ".register(prefix='onr', onRegistered=lambda: execute('set', 'onreg', 'yes'))"
    )
    assert pyexecute(r, code) == "OK"
    wait_until(lambda: r.get("onreg") == "yes", what="onRegistered callback")


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
"""


def commands_served_during_step(r):
    """Keep sending commands until the step reports how many Redis served while it slept."""
    deadline = time.monotonic() + 15
    while not r.llen("served"):
        assert time.monotonic() < deadline, "step never finished"
        time.sleep(0.01)
    return int(r.lindex("served", 0))


@pytest.mark.parametrize("mode", ["async", "async_local"])
def test_async_step_does_not_block_redis(r, mode):
    """An async execution holds the Redis lock only while it touches Redis (LockSliceMicros):
    while its step sleeps in Python for 1.5 s, the commands this client keeps sending
    (about one per 10 ms) are served. A module that holds the lock for the whole step serves
    none of them until the step is over."""
    code = SERVED_WHILE_SLEEPING + f"GB('StreamReader').foreach(step).register(prefix='blk', mode='{mode}')"
    assert pyexecute(r, code) == "OK"
    r.xadd("blk", {"n": "1"})
    n = commands_served_during_step(r)
    assert n >= 10, f"Redis served only {n} commands during a 1.5 s async {mode} step"


# ---------------------------------------------------------------------------- batch / duration

SIZE_RECORDER = (
    "GB('StreamReader')"
    ".accumulate(lambda a, x: (a or 0) + 1)"
    ".foreach(lambda c: execute('rpush', 'sizes', c))"
)


def test_batch_waits_for_batch_messages(r):
    rid = register_id(r, SIZE_RECORDER + ".register(prefix='b', batch=3)")
    r.xadd("b", {"n": "1"})
    r.xadd("b", {"n": "2"})
    time.sleep(QUIET)
    assert r.lrange("sizes", 0, -1) == []
    assert r.xlen("b") == 2
    assert reg(r, rid)["data"]["numTriggered"] == 0
    r.xadd("b", {"n": "3"})
    wait_until(lambda: r.lrange("sizes", 0, -1) == ["3"], what="a batch of 3")
    wait_until(lambda: r.xlen("b") == 0, what="trim")
    r.xadd("b", {"n": "4"})
    r.xadd("b", {"n": "5"})
    time.sleep(QUIET)
    assert r.lrange("sizes", 0, -1) == ["3"]
    r.xadd("b", {"n": "6"})
    wait_until(lambda: r.lrange("sizes", 0, -1) == ["3", "3"], what="second batch of 3")


def test_duration_flushes_partial_batch(r):
    rid = register_id(r, SIZE_RECORDER + ".register(prefix='dur', batch=1000, duration=300)")
    t0 = time.monotonic()
    r.xadd("dur", {"n": "1"})
    r.xadd("dur", {"n": "2"})
    wait_until(lambda: r.llen("sizes") >= 1, timeout=5, what="duration flush")
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.29, f"batch ran {elapsed:.3f}s after the first message, before duration"
    assert r.lrange("sizes", 0, -1) == ["2"]
    wait_until(lambda: r.xlen("dur") == 0, what="trim")
    data = reg(r, rid)["data"]
    # the messages waited at least the duration before being processed
    assert data["lastEstimatedLagMS"] >= 250, data


def test_duration_zero_means_count_only(r):
    register_id(r, SIZE_RECORDER + ".register(prefix='dz', batch=2, duration=0)")
    r.xadd("dz", {"n": "1"})
    time.sleep(QUIET + 0.3)
    assert r.lrange("sizes", 0, -1) == []
    r.xadd("dz", {"n": "2"})
    wait_until(lambda: r.lrange("sizes", 0, -1) == ["2"], what="batch of 2")


# ---------------------------------------------------------------------------- failure policies

FAILER = """
def step(x):
    execute('incr', 'attempts:' + x['value']['n'])
    if x['value']['n'] == 'bad' or execute('exists', 'failflag'):
        raise Exception('boom-' + x['value']['n'])
    execute('rpush', 'log', x['value']['n'])
"""


def register_failer(r, **kw):
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    code = FAILER + f"rid = GB('StreamReader').foreach(step).register({args})\nexecute('set', '__rid__', rid)\n"
    assert pyexecute(r, code) == "OK"
    rid = r.get("__rid__")
    r.delete("__rid__")
    return rid


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_policy_continue(r, mode):
    rid = register_failer(r, prefix="fc", onFailedPolicy="continue", mode=mode)
    for n in ["1", "bad", "2"]:
        r.xadd("fc", {"n": n})
    wait_until(lambda: r.lrange("log", 0, -1) == ["1", "2"], what="messages after the failure")
    wait_until(lambda: r.xlen("fc") == 0, what="failed message acknowledged and trimmed")
    data = reg(r, rid)["data"]
    assert data["numFailures"] >= 1, data
    assert "boom-bad" in (data["lastError"] or ""), data
    assert data["status"] == "OK", data
    time.sleep(QUIET)
    assert r.get("attempts:bad") == "1"  # not retried


def test_policy_abort(r):
    rid = register_failer(r, prefix="fa", onFailedPolicy="abort")
    r.xadd("fa", {"n": "1"})
    wait_until(lambda: r.lrange("log", 0, -1) == ["1"], what="first message")
    r.xadd("fa", {"n": "bad"})
    wait_until(lambda: status(r, rid) == "ABORTED", what="status ABORTED")
    assert "boom-bad" in (reg(r, rid)["data"]["lastError"] or "")
    r.xadd("fa", {"n": "2"})
    r.xadd("fa", {"n": "3"})
    time.sleep(QUIET + 0.3)
    assert r.lrange("log", 0, -1) == ["1"]
    assert r.get("attempts:2") is None and r.get("attempts:3") is None
    assert status(r, rid) == "ABORTED"
    assert r.xlen("fa") >= 2  # nothing more consumed
    # unregistering an aborted registration works
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    assert rid not in dump_regs(r)


def test_policy_retry(r):
    r.set("failflag", "1")
    rid = register_failer(r, prefix="fr", onFailedPolicy="retry", onFailedRetryInterval=1)
    t0 = time.monotonic()
    first = r.xadd("fr", {"n": "a"})
    wait_until(lambda: status(r, rid) == "WAITING_FOR_RETRY_ON_FAILURE", what="waiting for retry")
    r.xadd("fr", {"n": "b"})
    # retried (the same message), at the interval, not in a tight loop
    wait_until(lambda: int(r.get("attempts:a") or 0) >= 2, timeout=5, what="a retry")
    time.sleep(0.5)
    attempts = int(r.get("attempts:a"))
    elapsed = time.monotonic() - t0
    assert attempts <= elapsed / 1.0 + 2, (attempts, elapsed)
    assert r.lrange("log", 0, -1) == []
    assert r.get("attempts:b") is None or int(r.get("attempts:b")) <= attempts
    assert r.xrange("fr", first, first)  # still in the stream
    r.delete("failflag")
    wait_until(lambda: r.lrange("log", 0, -1) == ["a", "b"], timeout=5, what="success after retry")
    wait_until(lambda: status(r, rid) == "OK", what="status back to OK")
    wait_until(lambda: r.xlen("fr") == 0, what="trim after success")


def test_sync_mode_refuses_abort_and_retry(r):
    for policy in ["abort", "retry"]:
        with pytest.raises(redis.ResponseError) as e:
            pyexecute(
                r,
                f"GB('StreamReader').register(prefix='sy', mode='sync', onFailedPolicy='{policy}')",
            )
        assert "continue" in str(e.value) or "sync" in str(e.value), str(e.value)
    assert dump_regs(r) == {}
    assert pyexecute(r, "GB('StreamReader').register(prefix='sy', mode='sync', onFailedPolicy='continue')") == "OK"


# ---------------------------------------------------------------------------- trimming

def test_trim_false_keeps_messages(r):
    register_id(r, "GB('StreamReader')" + logger("log") + ".register(prefix='nt', trimStream=False)")
    ids = [r.xadd("nt", {"n": str(i)}) for i in range(5)]
    wait_until(lambda: r.llen("log") == 5, what="processed")
    time.sleep(QUIET)
    assert r.xlen("nt") == 5
    assert [m[0] for m in r.xrange("nt")] == ids
    assert r.lrange("log", 0, -1) == ids  # processed once each


def test_trim_waits_for_every_registration(r):
    a = register_id(r, "GB('StreamReader')" + logger("loga") + ".register(prefix='two')")
    b = register_id(r, "GB('StreamReader')" + logger("logb") + ".register(prefix='two')")
    assert r.execute_command("RG.PAUSEREGISTRATIONS", b) == "OK"
    ids = [r.xadd("two", {"n": str(i)}) for i in range(3)]
    wait_until(lambda: r.llen("loga") == 3, what="a processed")
    time.sleep(QUIET)
    assert r.llen("logb") == 0
    assert r.xlen("two") == 3, "trimmed messages that a paused registration still needs"
    assert r.execute_command("RG.UNPAUSEREGISTRATIONS", b) == "OK"
    wait_until(lambda: r.llen("logb") == 3, what="b processed after unpause")
    assert r.lrange("logb", 0, -1) == ids
    wait_until(lambda: r.xlen("two") == 0, what="trim when nobody needs them")
    assert status(r, a) == "OK" and status(r, b) == "OK"


def test_trim_keeps_messages_a_slow_registration_has_not_finished(r):
    """A message read but not yet acknowledged by one registration is still needed (it is
    re-read after a crash), so another registration's trim must not remove it."""
    register_id(r, "GB('StreamReader')" + logger("fast") + ".register(prefix='slow')")
    register_id(
        r,
        "GB('StreamReader').foreach(lambda x: __import__('time').sleep(0.3))"
        + logger("slowlog") + ".register(prefix='slow')",
    )
    n = 4
    for i in range(n):
        r.xadd("slow", {"n": str(i)})
    wait_until(lambda: r.llen("fast") == n, what="fast registration done")
    deadline = time.monotonic() + 10
    while True:
        xlen = r.xlen("slow")  # first the stream, then the progress of the slow one
        done = r.llen("slowlog")
        assert xlen >= n - done, (
            f"stream trimmed to {xlen} while the slow registration had finished only "
            f"{done} of {n} messages"
        )
        if done == n:
            break
        assert time.monotonic() < deadline, "slow registration never finished"
        time.sleep(0.02)
    wait_until(lambda: r.xlen("slow") == 0, what="trim once both are done")


# ---------------------------------------------------------------------------- pause / unpause

def test_pause_unpause(r):
    rid = register_id(r, "GB('StreamReader')" + logger("log") + ".register(prefix='pz')")
    r.xadd("pz", {"n": "0"})
    wait_until(lambda: r.llen("log") == 1, what="first")
    wait_until(lambda: r.xlen("pz") == 0, what="first acknowledged and trimmed")
    assert r.execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"
    assert status(r, rid) == "PAUSED"
    ids = [r.xadd("pz", {"n": str(i)}) for i in range(1, 4)]
    time.sleep(QUIET)
    assert r.llen("log") == 1
    assert r.xlen("pz") == 3
    assert status(r, rid) == "PAUSED"
    assert r.execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    # no new XADD: the periodic sweep picks them up
    wait_until(lambda: r.llen("log") == 4, timeout=5, what="waiting messages after unpause")
    assert r.lrange("log", 1, -1) == ids
    assert status(r, rid) == "OK"
    wait_until(lambda: r.xlen("pz") == 0, what="trim")
    r.xadd("pz", {"n": "4"})
    wait_until(lambda: r.llen("log") == 5, what="new message after unpause")


def test_pause_errors(r):
    krid = register_id(r, "GB('KeysReader').foreach(lambda x: None).register(prefix='kk')")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.PAUSEREGISTRATIONS", krid)
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.UNPAUSEREGISTRATIONS", krid)
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.PAUSEREGISTRATIONS", "0000000000000000000000000000000000000000-999999")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.PAUSEREGISTRATIONS", "nonsense")
    with pytest.raises(redis.ResponseError):
        r.execute_command("RG.PAUSEREGISTRATIONS")
    # the keys registration still works
    assert krid in dump_regs(r)


# ---------------------------------------------------------------------------- dumpregistrations

def test_dumpregistrations_stream_fields(r):
    rid = register_id(
        r,
        "GB('StreamReader', desc='my stream').foreach(lambda x: None).register("
        "prefix='dr*', batch=5, duration=700, onFailedPolicy='retry', "
        "onFailedRetryInterval=3, trimStream=False, mode='async_local')",
    )
    d = reg(r, rid)
    assert d["reader"] == "StreamReader"
    assert d["desc"] == "my stream"
    data = d["data"]
    assert data["mode"] == "async_local"
    assert data["status"] == "OK"
    for k in ("lastEstimatedLagMS", "avgEstimatedLagMS"):
        assert k in data, data
        float(data[k])
    assert d["args"] == {
        "regex": "dr*", "batchSize": 5, "durationMS": 700, "onFailedPolicy": "retry",
        "onFailedRetryInterval": 3, "trimStream": 0,
    }, d["args"]

    rid2 = register_id(r, "GB('StreamReader').foreach(lambda x: None).register()")
    assert reg(r, rid2)["args"] == {
        "regex": "*", "batchSize": 1, "durationMS": 0, "onFailedPolicy": "continue",
        "onFailedRetryInterval": 1, "trimStream": 1,
    }
    assert reg(r, rid2)["data"]["mode"] == "async"


def test_unregister_stops_processing(r):
    rid = register_id(r, "GB('StreamReader')" + logger("log") + ".register(prefix='un')")
    r.xadd("un", {"n": "1"})
    wait_until(lambda: r.llen("log") == 1, what="first")
    wait_until(lambda: r.xlen("un") == 0, what="first acknowledged and trimmed")
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    r.xadd("un", {"n": "2"})
    time.sleep(QUIET)
    assert r.llen("log") == 1
    assert r.xlen("un") == 1


# ---------------------------------------------------------------------------- recipe 3

def test_recipe3_stream_to_keys(r):
    with open(RECIPE3) as f:
        code = f.read()
    assert pyexecute(r, code) == "OK"
    r.config_resetstat()
    n = 10_000
    expected = {}
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        fields = {f"k{i}a": f"va{i}", f"k{i}b": f"vb{i}"}
        expected.update(fields)
        pipe.xadd("inputStream", fields)
    pipe.execute()

    def done():
        return r.dbsize() - r.exists("inputStream") >= len(expected)

    wait_until(done, timeout=30, what="20,000 keys")
    wait_until(lambda: r.xlen("inputStream") == 0, timeout=10, what="inputStream trimmed")
    keys = set(r.scan_iter(count=5000)) - {"inputStream"}
    assert keys == set(expected)
    names = sorted(expected)
    for i in range(0, len(names), 2000):
        chunk = names[i:i + 2000]
        assert r.mget(chunk) == [expected[k] for k in chunk]
    for k in names[:50]:
        assert r.type(k) == "string"
    # every message applied once: exactly one SET per field
    time.sleep(QUIET)
    stats = r.info("commandstats")
    assert stats["cmdstat_set"]["calls"] == len(expected), stats["cmdstat_set"]


# ---------------------------------------------------------------------------- SIGKILL guarantee

COUNTER_RECIPE = (
    "GB('StreamReader')"
    ".foreach(lambda x: execute('incr', '{counter}' + x['value']['n']))"
    ".register(prefix='in*', mode='{mode}')"
)
SLOW_COUNTER_RECIPE = (
    "GB('StreamReader')"
    ".foreach(lambda x: __import__('time').sleep(0.002))"
    ".foreach(lambda x: execute('incr', '{counter}' + x['value']['n']))"
    ".register(prefix='in*', mode='{mode}')"
)
WRITERS = 2


def flow_and_kill(s, accepted, round_no, min_new):
    """Writers send single XADDs (n unique) from threads; SIGKILL once `min_new` more were
    accepted (got a reply); restart. Returns when the server is up again."""
    stop = threading.Event()
    start_count = sum(map(len, accepted))

    def writer(t):
        w = nc_client(s, timeout=5)
        i = 0
        try:
            while not stop.is_set():
                n = f"{round_no}.{t}.{i}"
                w.xadd(f"in:{t}", {"n": n})
                accepted[t].append(n)  # only after the reply: accepted
                i += 1
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        finally:
            w.close()

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(WRITERS)]
    for t in threads:
        t.start()
    wait_until(
        lambda: sum(map(len, accepted)) - start_count >= min_new
        or not any(t.is_alive() for t in threads),
        timeout=30, what="messages flowing",
    )
    s.proc.kill()
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    assert sum(map(len, accepted)) - start_count >= min_new, "writers stopped before the kill"
    s.start()


def missing_counters(c, keys):
    out = []
    for i in range(0, len(keys), 1000):
        chunk = keys[i:i + 1000]
        out += [k for k, v in zip(chunk, c.mget(chunk)) if v is None]
    return out


def assert_all_processed(s, c, accepted, counter, what):
    keys = [f"{counter}{n}" for lst in accepted for n in lst]
    try:
        wait_until(lambda: not missing_counters(c, keys), timeout=20,
                   what="every accepted message processed")
    except AssertionError:
        m = missing_counters(c, keys)
        raise AssertionError(
            f"{what}: {len(m)} of {len(keys)} accepted messages never processed after "
            f"SIGKILL + restart, e.g. {m[:5]}; log tail:\n{s.log()[-3000:]}"
        )


def assert_streams_drained(c, what):
    """Every message was processed, so nothing needs them: the streams end up empty."""
    streams = [f"in:{t}" for t in range(WRITERS)]
    try:
        wait_until(lambda: all(c.xlen(k) == 0 for k in streams), timeout=10,
                   what="streams fully consumed and trimmed")
    except AssertionError:
        raise AssertionError(
            f"{what}: processed messages left in the streams after restart: "
            + ", ".join(f"{k} len {c.xlen(k)} {c.xrange(k)[:2]}" for k in streams)
        )


@pytest.mark.parametrize("mode", ["async", "async_local", "sync"])
def test_sigkill_loses_no_message(fresh_server, mode):
    s = fresh_server(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    c = nc_client(s)
    assert pyexecute(c, COUNTER_RECIPE.format(mode=mode, counter="count:")) == "OK"
    # warm-up: the registration works before any kill
    for i in range(20):
        c.xadd("in:pre", {"n": f"p{i}"})
    wait_until(lambda: all(v == "1" for v in c.mget([f"count:p{i}" for i in range(20)])),
               what="warm-up messages")
    c.close()

    accepted = [[] for _ in range(WRITERS)]
    for round_no in range(3):  # kill three times, at different points of the flow
        flow_and_kill(s, accepted, round_no, min_new=600 * (round_no + 1))
        c = nc_client(s)
        assert_all_processed(s, c, accepted, "count:", f"mode {mode}, kill #{round_no + 1}")
        names = list(c.scan_iter("count:*", count=1000))
        counts = {k: int(v) for k, v in zip(names, c.mget(names))} if names else {}
        assert all(v >= 1 for v in counts.values())
        if mode == "sync":
            twice = {k: v for k, v in counts.items() if v != 1}
            assert not twice, (
                f"sync mode applied {len(twice)} messages more than once after kill "
                f"#{round_no + 1}: {sorted(twice.items())[:5]}"
            )
        c.close()
    c = nc_client(s)
    # still processing new messages after the restarts
    c.xadd("in:post", {"n": "post"})
    wait_until(lambda: c.get("count:post") == "1", what="new message after restart")
    assert_streams_drained(c, f"mode {mode}")
    c.close()


def test_sigkill_two_registrations_on_one_stream(fresh_server):
    """Two registrations read the same streams, one lagging behind: the fast one's trim must
    not remove messages the slow one has not acknowledged, or a kill loses them."""
    s = fresh_server(extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    c = nc_client(s)
    assert pyexecute(c, COUNTER_RECIPE.format(mode="async", counter="fast:")) == "OK"
    assert pyexecute(c, SLOW_COUNTER_RECIPE.format(mode="async", counter="slow:")) == "OK"
    c.close()
    accepted = [[] for _ in range(WRITERS)]
    for round_no in range(2):
        flow_and_kill(s, accepted, round_no, min_new=800)
        c = nc_client(s)
        assert_all_processed(s, c, accepted, "fast:", f"fast registration, kill #{round_no + 1}")
        assert_all_processed(s, c, accepted, "slow:", f"slow registration, kill #{round_no + 1}")
        c.close()
    c = nc_client(s)
    assert_streams_drained(c, "two registrations")
    c.close()
