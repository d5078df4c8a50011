"""RedisGears 1.2 habits that tools and libraries rely on, item by item: execution
bookkeeping, error texts, runtime names and arguments (the doc recipes themselves are in
test_compat_docs.py)."""
import time

import pytest
import redis

from conftest import in_background, pairs, pyexecute, wait_until

ResponseError = redis.exceptions.ResponseError


@pytest.fixture
def c(r):
    return r


def executions(c):
    return {pairs(e)["executionId"]: pairs(e) for e in c.execute_command("RG.DUMPEXECUTIONS")}


# ------------------------------------------------------------------ execution bookkeeping

SLOW = """
import time
def slow(x):
    for _ in range(600):
        time.sleep(0.05)
    return x
GB('ShardsIDReader').map(slow).run()
"""


def test_abortexecution_answers_once_stopped(c):
    """1.2 answers RG.ABORTEXECUTION once the execution has stopped: a client may drop it
    right after the OK."""
    eid = pyexecute(c, SLOW, "UNBLOCKING")
    wait_until(lambda: executions(c)[eid]["status"] == "running", what="the run to start")
    t = time.monotonic()
    assert c.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    assert executions(c)[eid]["status"] == "aborted"
    assert time.monotonic() - t < 5
    assert c.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert eid not in executions(c)
    # Aborting what has finished is no error.
    done = pyexecute(c, "GB('ShardsIDReader').run()", "UNBLOCKING")
    c.execute_command("RG.GETRESULTSBLOCKING", done)
    assert c.execute_command("RG.ABORTEXECUTION", done) == "OK"


def test_unregister_abortpending(c):
    rid_code = "GB('CommandReader').register(trigger='t_abortpending')"
    assert pyexecute(c, rid_code) == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    assert c.execute_command("RG.UNREGISTER", rid, "abortpending") == "OK"
    assert c.execute_command("RG.DUMPREGISTRATIONS") == []
    assert pyexecute(c, rid_code) == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    with pytest.raises(ResponseError, match="Unknown arguments were given: later"):
        c.execute_command("RG.UNREGISTER", rid, "later")


# ------------------------------------------------------------------ runtime names and arguments

def run_ok(c, code):
    results, errors = pyexecute(c, code)
    assert errors == [], errors
    return results


def test_execute_sends_str_of_any_argument(c):
    """1.2 converts every execute() argument with str()."""
    run_ok(c, "GB('ShardsIDReader').foreach(lambda x: execute('SET', 'd', {'a': 1}))"
              ".foreach(lambda x: execute('SET', 'b', True)).foreach(lambda x: execute('SET', 'n', None)).run()")
    assert c.get("d") == "{'a': 1}" and c.get("b") == "True" and c.get("n") == "None"


def test_redisgears_module_has_12s_names(c):
    code = """
import redisgears
from redisgears import executeCommand as execute2, getMyHashTag, atomicCtx, log as log2
def f(x):
    a = atomicCtx()
    a.__enter__()
    inside = redisgears.isInAtomicBlock()
    execute2('SET', 'k{%s}' % getMyHashTag(), 'v')
    a.__exit__()
    log2('from redisgears', level='notice')
    return [inside, redisgears.isInAtomicBlock(), redisgears.config_get('MaxExecutions')]
GB('ShardsIDReader').map(f).run()
"""
    assert run_ok(c, code) == ["[True, False, '1000']"]
    assert [k for k in c.keys("k{*}")]


def test_register_regex_is_prefix(server, c):
    assert pyexecute(c, "GB().foreach(lambda x: execute('INCR', 'seen')).register(regex='rx:*', mode='sync')") == "OK"
    c.set("rx:1", "a")
    c.set("other", "b")
    assert c.get("seen") == "1"
    assert "Using regex argument with register is deprecated" in server.log()


def test_run_ignores_unknown_keywords(c):
    c.set("a", "1")
    assert run_ok(c, "GB().map(lambda x: x['key']).run(prefix='nothing:*')") == ["a"]


def test_same_trigger_twice_in_one_script_is_refused(c):
    with pytest.raises(ResponseError, match="trigger already registered"):
        pyexecute(c, "GB('CommandReader').register(trigger='twice')\n"
                     "GB('CommandReader').register(trigger='twice')")
    assert c.execute_command("RG.DUMPREGISTRATIONS") == []


def test_register_te_calls_back_every_period(c):
    assert pyexecute(c, "registerTE(0.05, lambda: execute('INCR', 'ticks'))") == "OK"
    wait_until(lambda: int(c.get("ticks") or 0) >= 3, what="three ticks")
    [reg] = c.execute_command("RG.DUMPREGISTRATIONS")
    assert pairs(reg)["reader"] == "TimeReader"


def test_flat_error_is_reported_as_is(c):
    pyexecute(c, "def f(x):\n    raise flat_error('ERR no such user')\n"
                 "GB('CommandReader').map(f).register(trigger='flat')")
    with pytest.raises(ResponseError) as e:
        c.execute_command("RG.TRIGGER", "flat")
    assert str(e.value) == "no such user"   # redis-py drops the ERR code


def test_run_coroutine_continues_a_gears_future(c):
    """runCoroutine(cr, f): a plain step returns a gearsFuture, a coroutine run in the
    background continues it."""
    code = """
import asyncio
async def later(x):
    await asyncio.sleep(0.05)
    return 'late ' + x
def f(x):
    fut = gearsFuture()
    runCoroutine(later(x), fut)
    return fut
GB('ShardsIDReader').map(lambda x: 'me').map(f).run()
"""
    assert run_ok(c, code) == ["late me"]


def test_await_a_run_started_by_a_step(c):
    for i in range(4):
        c.set(f"n:{i}", i)
    code = """
async def count(x):
    res = await GB().count().run('n:*')
    return res
GB('ShardsIDReader').map(count).run()
"""
    before = executions(c)
    assert run_ok(c, code) == ["[['4'], []]"]
    # the inner run is forgotten once read, the outer once answered
    assert executions(c) == before


# ------------------------------------------------------------------ error texts tools match on

@pytest.mark.parametrize("command, text", [
    (["RG.PYEXECUTE", "call_next('x')"], "Can not get CommandHook ctx"),
    (["RG.PYEXECUTE", "GB('CommandReader').register(hook='multi')"],
     "Can not override a command which are not allowed inside a script"),
    (["RG.PYEXECUTE", "GB('CommandReader').register(hook='zunionstore', keyprefix='x')"],
     "Can not hook a command with moveable keys by key prefix"),
    (["RG.PYEXECUTE", "GB('CommandReader').register(hook='nosuchcommand')"],
     "Can not override an unexisting command"),
    (["RG.PYEXECUTE", "GB().run()", "ID"], "ID is missing"),
    (["RG.PYEXECUTE", "GB().register()", "REPLACE_WITH", "foo"],
     "Can not replace with foo, session does not exists"),
    (["RG.PYEXECUTE", "GB('Nope').run()"], "reader does not exists"),
    (["RG.PYEXECUTE", "GB().map().run()"], "wrong number of args"),
    (["RG.PYEXECUTE", "GB().map(lambda a, b: a, 2).run()"], "wrong number of args"),
    (["RG.PYEXECUTE", "GB().map(1).run()"], "argument must be a function"),
    (["RG.PYEXECUTE", "GB('CommandReader').register()"], "no trigger or hook argument was given"),
])
def test_error_texts(c, command, text):
    with pytest.raises(ResponseError) as e:
        c.execute_command(*command)
    assert text in str(e.value), str(e.value)


def test_hooking_a_command_with_moveable_keys_without_keyprefix(c):
    """1.2 refuses moveable keys only together with a key prefix."""
    assert pyexecute(c, "GB('CommandReader').map(lambda x: call_next(*x[1:]))"
                        ".register(hook='zunionstore')") == "OK"
    c.zadd("z", {"m": 1})
    assert c.zunionstore("dst", ["z"]) == "1"   # the hook's reply: str() of call_next's
    assert c.zrange("dst", 0, -1) == ["m"]


def test_configget_unknown_is_an_error_element(c):
    [answer] = c.execute_command("RG.CONFIGGET", "NoSuchConfig")
    assert isinstance(answer, ResponseError)
    assert str(answer) == "Unsupported config parameter: NoSuchConfig"


def test_pause_of_a_keys_registration(c):
    assert pyexecute(c, "GB().register(prefix='p:*')") == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    with pytest.raises(ResponseError, match="Reader KeysReader does not support pause"):
        c.execute_command("RG.PAUSEREGISTRATIONS", rid)


def test_async_trigger_inside_multi(c):
    assert pyexecute(c, "GB('CommandReader').register(trigger='in_multi')") == "OK"
    pipe = c.pipeline(transaction=True)
    pipe.execute_command("RG.TRIGGER", "in_multi")
    [reply] = pipe.execute(raise_on_error=False)
    assert "can not run a non-sync execution inside a MULTI/LUA" in str(reply)


def test_shard_id_reader_without_a_cluster(c):
    assert run_ok(c, "GB('ShardsIDReader').run()") == ["1"]
    assert run_ok(c, "GB('ShardIDReader').run()") == ["1"]


def test_group_keys_are_str(c):
    """1.2's groups are keyed by str: countby/groupby/aggregateby of non-str keys."""
    for i in range(4):
        c.set(f"g:{i}", i)
    out = run_ok(c, "GB().countby(lambda x: int(x['value']) % 2).run()")
    assert sorted(out) == ["{'key': '0', 'value': 2}", "{'key': '1', 'value': 2}"]


def test_noscan_of_a_missing_key_is_an_empty_record(c):
    assert run_ok(c, "GB().run('missing', noScan=True)") == [
        "{'key': 'missing', 'value': None, 'type': 'empty', 'event': None}"]
    assert run_ok(c, "GB('KeysOnlyReader').run('missing', noScan=True)") == []


# ------------------------------------------------------------------ streams, introspection

def test_flat_error_pause_pauses_a_stream_registration(c):
    """1.2: a step raising flat_error('PAUSE ...') pauses its registration; the message
    waits, unacknowledged, and is processed once the registration is unpaused."""
    code = """
def f(x):
    if execute('GET', 'gate') != 'open':
        flat_error('PAUSE waiting for the gate')
    execute('INCR', 'done:' + x['id'])
GB('StreamReader').foreach(f).register(prefix='ps', mode='async_local')
"""
    assert pyexecute(c, code) == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    mid = c.xadd("ps", {"a": "1"})

    def status():
        reg = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])
        return pairs(reg["RegistrationData"]).get("status")
    wait_until(lambda: status() == "PAUSED", what="the registration paused by its step")
    assert c.get("done:" + mid) is None
    c.set("gate", "open")
    assert c.execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    wait_until(lambda: c.get("done:" + mid) == "1", what="the message processed after unpause")


def test_pause_aborts_queued_executions(fresh_server):
    """1.2: pausing a registration aborts its executions that have not started; their
    messages are processed after the unpause, none lost."""
    s = fresh_server(module_args=["ExecutionThreads", 1])
    c = s.client()
    code = """
import time
def f(x):
    time.sleep(0.2)
    execute('INCR', 'n:' + x['key'])
GB('StreamReader').foreach(f).register(prefix='q:*', mode='async_local')
"""
    assert pyexecute(c, code) == "OK"
    rid = pairs(c.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    for i in range(6):
        c.xadd(f"q:{i}", {"v": "1"})
    wait_until(lambda: any(pairs(e)["status"] == "created"
                           for e in c.execute_command("RG.DUMPEXECUTIONS")),
               what="executions queued behind the running one")
    assert c.execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"
    statuses = [pairs(e)["status"] for e in c.execute_command("RG.DUMPEXECUTIONS")]
    assert "created" not in statuses and "aborted" in statuses
    assert c.execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    wait_until(lambda: all(c.get(f"n:q:{i}") for i in range(6)), timeout=20,
               what="every message processed after the unpause")


def test_pydumpsessions_options(c):
    assert pyexecute(c, "GB('CommandReader').register(trigger='dump_a')", "ID", "sa") == "OK"
    assert pyexecute(c, "GB('CommandReader').register(trigger='dump_b')", "ID", "sb") == "OK"
    ids = [pairs(s)["ID"] for s in c.execute_command("RG.PYDUMPSESSIONS", "TS")]
    assert {"sa", "sb"} <= set(ids)
    [only] = c.execute_command("RG.PYDUMPSESSIONS", "VERBOSE", "SESSIONS", "sa")
    only = pairs(only)
    assert only["ID"] == "sa"
    [reg] = only["registrations"]
    assert pairs(reg)["reader"] == "CommandReader"
    with pytest.raises(ResponseError, match="Unknown arguments"):
        c.execute_command("RG.PYDUMPSESSIONS", "BOGUS")


def test_blocked_commands_reach_the_slowlog(c):
    c.config_set("slowlog-log-slower-than", 100000)   # 100 ms
    c.slowlog_reset()
    pyexecute(c, "import time\nGB('ShardsIDReader').foreach(lambda x: time.sleep(0.3)).run()")
    entries = c.slowlog_get()
    assert any(e["command"].startswith(b"RG.PYEXECUTE") if isinstance(e["command"], bytes)
               else e["command"].startswith("RG.PYEXECUTE") for e in entries), entries
    assert max(e["duration"] for e in entries) >= 300000
    c.config_set("slowlog-log-slower-than", 10000)


# ------------------------------------------------------------------ futures in sync runs

SYNC_FUTURES = """
waiting = {}

def park(r):
    f = gearsFuture()
    waiting[r[1]] = f
    return f

def release(r):
    f = waiting.pop(r[1], None)
    if f is None:
        return 'nothing waits on %s' % r[1]
    f.continueRun('released ' + r[1])
    return 'ok'

async def later(r):
    return 'async ' + r['key']

def early(r):
    f = gearsFuture()
    f.continueRun(r)
    return f

GB('CommandReader').map(park).register(trigger='park', mode='sync')
GB('CommandReader').map(release).register(trigger='release', mode='sync')
GB('CommandReader').map(lambda r: gearsFuture()).register(trigger='dropped', mode='sync')
GB('CommandReader').map(early).register(trigger='early', mode='sync')
GB('CommandReader').map(lambda r: isAsyncAllow()).register(trigger='allowed', mode='sync')
GB().map(later).foreach(lambda v: execute('set', 'out:' + v[6:], v)).register(
    prefix='in:*', eventTypes=['set'], mode='sync')
"""


def test_sync_run_moves_to_the_background_on_a_future(server, c):
    """As in 1.2: a sync step returning a gearsFuture moves its run to the background. The
    RG.TRIGGER client waits for it while Redis serves others (here: the client that
    releases it); the answered run is then forgotten."""
    assert pyexecute(c, SYNC_FUTURES) == "OK"
    other = server.client()
    parked = in_background(other.execute_command, "RG.TRIGGER", "park", "k1")
    wait_until(lambda: c.execute_command("RG.TRIGGER", "release", "k1") == ["ok"],
               what="the parked run to be released")
    assert parked() == ["released k1"]
    assert c.execute_command("RG.TRIGGER", "allowed") == ["True"]
    assert not [e for e in executions(c).values() if e["status"] != "done"]
    other.close()


def test_sync_keyspace_run_with_a_coroutine_finishes_in_the_background(c):
    assert pyexecute(c, SYNC_FUTURES) == "OK"
    c.set("in:a", "1")
    assert wait_until(lambda: c.get("out:in:a"), what="the coroutine's write") == "async in:a"


def test_futures_are_refused_where_the_run_cannot_move(c):
    """Inside MULTI the sync run must end within the transaction: 1.2's error, and
    isAsyncAllow() says False."""
    assert pyexecute(c, SYNC_FUTURES) == "OK"
    p = c.pipeline(transaction=True)
    p.execute_command("RG.TRIGGER", "park", "k2")
    p.execute_command("RG.TRIGGER", "allowed")
    parked, allowed = p.execute(raise_on_error=False)
    assert "Future object is not allowed on sync execution" in str(parked)
    assert allowed == ["False"]


def test_gears_future_misuse_gets_1_2_errors(c):
    assert pyexecute(c, SYNC_FUTURES) == "OK"
    with pytest.raises(ResponseError, match="Async record did not called continue"):
        c.execute_command("RG.TRIGGER", "dropped")
    with pytest.raises(ResponseError,
                       match="Can not handle future untill it returned from the callback"):
        c.execute_command("RG.TRIGGER", "early")
def test_pyprofile_stats_and_reset(c):
    assert c.execute_command("RG.CONFIGSET", "ProfileExecutions", 1) == ["OK"]
    try:
        code = ("import time\ndef slow_step(x):\n    time.sleep(0.01)\n    return x\n"
                "GB('CommandReader').map(slow_step).register(trigger='prof')")
        assert pyexecute(c, code, "ID", "profiled") == "OK"
        for _ in range(3):
            c.execute_command("RG.TRIGGER", "prof")
        text = c.execute_command("RG.PYPROFILE", "STATS", "profiled")
        assert "slow_step" in text and "time.sleep" in text
        assert "cumulative" in c.execute_command("RG.PYPROFILE", "STATS", "profiled", "cumtime")
        assert c.execute_command("RG.PYPROFILE", "RESET", "profiled") == "OK"
        with pytest.raises(ResponseError, match="no profile of session profiled"):
            c.execute_command("RG.PYPROFILE", "STATS", "profiled")
        with pytest.raises(ResponseError, match="session nosuch does not exists"):
            c.execute_command("RG.PYPROFILE", "STATS", "nosuch")
    finally:
        c.execute_command("RG.CONFIGSET", "ProfileExecutions", 0)
