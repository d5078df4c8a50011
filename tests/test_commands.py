"""Black-box tests of the RG.* execution, session, stats and config commands.

Reply shapes follow SPEC.md ("Literal reply shapes of 1.2") and the decisions of the lead:
- RG.PYEXECUTE: [[results],[errors]] when blocking, the execution id with UNBLOCKING, OK
  without run(), an error naming the Python exception for a script error, refused in MULTI.
- RG.GETEXECUTION id [SHARD|CLUSTER]: [['shard_id', id, 'execution_plan', [...plan...]]].
- RG.GETRESULTS / RG.GETRESULTSBLOCKING / RG.DROPEXECUTION / RG.ABORTEXECUTION /
  RG.DUMPEXECUTIONS / RG.CONFIGGET / RG.CONFIGSET / RG.PYSTATS / RG.PYDUMPSESSIONS.
"""
import ast
import contextlib
import re
import threading
import textwrap
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import pyexecute, wait_until

ZERO = "0" * 40
ID_RE = re.compile(r"^0{40}-\d+$")
UNKNOWN_ID = ZERO + "-987654321"
ResponseError = redis.exceptions.ResponseError

# 1.2's keys, then this module's: runtime entries and a running execution's progress.
PLAN_KEYS = [
    "status", "shards_received", "shards_completed", "results", "errors",
    "total_duration", "read_duration", "steps", "python_entries", "records_read",
    "started_at",
]
STATUSES = {
    "created", "running", "pending_receive", "pending_run", "pending_cluster",
    "pending_termination", "done", "aborted",
}

# A job that produces three results: '0', '1', '2'.
THREE = textwrap.dedent("""
    def gen():
        yield from range(3)
    GB('PythonReader').run(gen)
""")

# A job whose only step waits (at most 20 s) until the key 'gate' exists.
GATED = textwrap.dedent("""
    import time
    def wait_gate(x):
        deadline = time.time() + 20
        while time.time() < deadline:
            if execute('exists', 'gate') == 1:
                return 'opened'
            time.sleep(0.01)
        return 'gate timeout'
    GB('ShardsIDReader').map(wait_gate).run()
""")


# ---------------------------------------------------------------- helpers

def pairs(flat):
    assert isinstance(flat, list) and len(flat) % 2 == 0, flat
    return dict(zip(flat[0::2], flat[1::2]))


def get_plan(c, eid, *extra):
    reply = c.execute_command("RG.GETEXECUTION", eid, *extra)
    assert isinstance(reply, list) and len(reply) == 1, reply
    shard = reply[0]
    assert isinstance(shard, list) and len(shard) == 4, shard
    assert shard[0] == "shard_id" and shard[2] == "execution_plan", shard
    return pairs(shard[3])


def status_of(c, eid):
    return get_plan(c, eid)["status"]


def wait_status(c, eid, wanted, timeout=10):
    wanted = {wanted} if isinstance(wanted, str) else set(wanted)
    seen = []

    def pred():
        st = status_of(c, eid)
        seen.append(st)
        return st in wanted

    try:
        wait_until(pred, timeout=timeout, interval=0.01, what=f"status in {wanted}")
    except AssertionError:
        raise AssertionError(f"status never in {wanted}; last seen {seen[-5:]}")
    return seen[-1]


def dump_executions(c):
    out = {}
    for entry in c.execute_command("RG.DUMPEXECUTIONS"):
        d = pairs(entry)
        out[d["executionId"]] = d
    return out


def sessions(c):
    return c.execute_command("RG.PYDUMPSESSIONS")


def unblocking(c, code, *args):
    eid = pyexecute(c, code, "UNBLOCKING", *args)
    assert isinstance(eid, str) and ID_RE.match(eid), eid
    return eid


def finished_id(c, code=THREE):
    """Run code with UNBLOCKING, wait for it, return its id."""
    eid = unblocking(c, code)
    c.execute_command("RG.GETRESULTSBLOCKING", eid)
    return eid


def refused(reply):
    """True when a CONFIGSET-like reply refuses: an error reply or an error element."""
    if isinstance(reply, ResponseError):
        return True
    if isinstance(reply, list):
        return any(isinstance(x, ResponseError) for x in reply)
    return False


def call(c, *args):
    """execute_command that returns a top-level error as a value instead of raising."""
    try:
        return c.execute_command(*args)
    except ResponseError as e:
        return e


@contextlib.contextmanager
def gated(c, *extra):
    """Start GATED with UNBLOCKING; on exit open the gate and wait for the end."""
    eid = unblocking(c, GATED, *extra)
    try:
        wait_status(c, eid, "running")
        yield eid
    finally:
        c.set("gate", "1")
        try:
            wait_status(c, eid, {"done", "aborted"}, timeout=25)
        except Exception:
            pass


@pytest.fixture
def c(server, r):
    """A client of the shared server with a socket timeout (nothing can hang the suite)."""
    cl = server.client(socket_timeout=60, retry=Retry(NoBackoff(), 0))
    yield cl
    cl.close()


# ---------------------------------------------------------------- RG.PYEXECUTE

def test_pyexecute_blocking_replies_results_and_errors(c):
    reply = pyexecute(c, THREE)
    assert isinstance(reply, list) and len(reply) == 2, reply
    results, errors = reply
    assert sorted(results) == ["0", "1", "2"]
    assert errors == []


def test_pyexecute_keysreader_default_str_records(c):
    c.set("a", "1")
    results, errors = pyexecute(c, "GB().run()")
    assert errors == []
    assert len(results) == 1
    assert ast.literal_eval(results[0]) == {"key": "a", "value": "1", "type": "string", "event": None}


def test_pyexecute_unblocking_replies_id(c):
    eid = unblocking(c, THREE)
    reply = c.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert isinstance(reply, list) and len(reply) == 2
    assert sorted(reply[0]) == ["0", "1", "2"] and reply[1] == []


def test_pyexecute_ids_increase(c):
    a = unblocking(c, THREE)
    b = unblocking(c, THREE)
    c.execute_command("RG.GETRESULTSBLOCKING", a)
    c.execute_command("RG.GETRESULTSBLOCKING", b)
    assert int(b.rsplit("-", 1)[1]) > int(a.rsplit("-", 1)[1])


def test_pyexecute_without_run_replies_ok(c):
    assert pyexecute(c, "x = 1\ny = x + 1\n") == "OK"


def test_pyexecute_script_error_names_exception(c, server):
    with pytest.raises(ResponseError, match="NameError"):
        pyexecute(c, "undefined_name_xyz + 1")
    assert c.ping() is True
    assert server.alive()


def test_pyexecute_two_runs_refused(c):
    code = THREE + "\nGB('PythonReader').run(gen)\n"
    with pytest.raises(ResponseError, match="Can not run more then 1 executions in a single script"):
        pyexecute(c, code)
    assert c.ping() is True


def test_pyexecute_refused_inside_multi(c):
    code = "GB('ShardsIDReader').foreach(lambda x: execute('set', 'ran', '1')).run()"
    p = c.pipeline(transaction=True)
    p.set("before", "1")
    p.execute_command("RG.PYEXECUTE", code)
    p.get("before")
    res = p.execute(raise_on_error=False)
    assert len(res) == 3, res
    assert res[0] is True
    assert isinstance(res[1], ResponseError), res
    assert res[2] == "1"
    time.sleep(0.2)
    assert c.exists("ran") == 0
    assert c.ping() is True


def test_pyexecute_refused_inside_lua(c):
    code = "GB('ShardsIDReader').foreach(lambda x: execute('set', 'ran', '1')).run()"
    with pytest.raises(ResponseError):
        c.eval("return redis.call('RG.PYEXECUTE', ARGV[1])", 0, code)
    time.sleep(0.2)
    assert c.exists("ran") == 0
    assert c.ping() is True


@pytest.mark.parametrize("args", [
    (),
    ("x = 1", "BOGUS"),
    ("x = 1", "ID"),
    ("x = 1", "DESCRIPTION"),
    ("x = 1", "UNBLOCKING", "BOGUS"),
], ids=["no-code", "unknown-option", "id-without-value", "desc-without-value", "unknown-after-unblocking"])
def test_pyexecute_bad_arguments(c, args):
    before = set(dump_executions(c))
    with pytest.raises(ResponseError):
        c.execute_command("RG.PYEXECUTE", *args)
    assert set(dump_executions(c)) == before
    assert c.ping() is True


def test_pyexecute_bad_option_does_not_run_script(c):
    with pytest.raises(ResponseError):
        c.execute_command("RG.PYEXECUTE", "execute('set', 'side_effect', '1')", "BOGUS")
    assert c.exists("side_effect") == 0


# ---------------------------------------------------------------- RG.GETEXECUTION

def test_getexecution_shape(c):
    eid = finished_id(c)
    reply = c.execute_command("RG.GETEXECUTION", eid)
    assert isinstance(reply, list) and len(reply) == 1
    shard = reply[0]
    assert shard[0] == "shard_id"
    assert shard[1] == ZERO
    assert shard[2] == "execution_plan"
    plan = shard[3]
    assert plan[0::2] == PLAN_KEYS, plan
    p = pairs(plan)
    assert p["status"] == "done"
    for k in ("shards_received", "shards_completed", "results", "total_duration",
              "read_duration", "python_entries"):
        assert isinstance(p[k], int), (k, p[k])
    assert p["results"] == 3
    assert p["errors"] == []
    assert p["python_entries"] >= 1
    assert isinstance(p["steps"], list) and len(p["steps"]) >= 1
    for step in p["steps"]:
        assert step[0::2] == ["type", "duration", "name", "arg"], step
        assert isinstance(step[1], str) and step[1]
        assert isinstance(step[3], int)


def test_getexecution_reports_errors(c):
    code = textwrap.dedent("""
        def f(x):
            if x == 1:
                raise ValueError('one is bad')
            return x
        def gen():
            yield from range(3)
        GB('PythonReader').map(f).run(gen)
    """)
    eid = finished_id(c, code)
    p = get_plan(c, eid)
    assert p["status"] == "done"
    assert p["results"] == 2
    assert len(p["errors"]) == 1
    assert "ValueError" in p["errors"][0] and "one is bad" in p["errors"][0]


@pytest.mark.parametrize("opt", ["SHARD", "CLUSTER", "shard", "cluster"])
def test_getexecution_shard_cluster_option(c, opt):
    eid = finished_id(c)
    p = get_plan(c, eid, opt)
    assert p["status"] == "done" and p["results"] == 3


def test_getexecution_unknown_id(c):
    with pytest.raises(ResponseError, match="execution plan does not exist"):
        c.execute_command("RG.GETEXECUTION", UNKNOWN_ID)


def test_getexecution_bad_arguments(c):
    eid = finished_id(c)
    with pytest.raises(ResponseError):
        c.execute_command("RG.GETEXECUTION")
    with pytest.raises(ResponseError):
        c.execute_command("RG.GETEXECUTION", eid, "BOGUS")
    with pytest.raises(ResponseError):
        c.execute_command("RG.GETEXECUTION", eid, "SHARD", "extra")


def test_getexecution_running_status(c):
    with gated(c) as eid:
        p = get_plan(c, eid)
        assert p["status"] == "running"
        assert p["status"] in STATUSES
    assert status_of(c, eid) == "done"


# ---------------------------------------------------------------- RG.GETRESULTS(BLOCKING)

def test_getresults_finished(c):
    eid = finished_id(c)
    reply = c.execute_command("RG.GETRESULTS", eid)
    assert isinstance(reply, list) and len(reply) == 2
    assert sorted(reply[0]) == ["0", "1", "2"] and reply[1] == []


def test_getresults_while_running_is_error(c):
    with gated(c) as eid:
        with pytest.raises(ResponseError):
            c.execute_command("RG.GETRESULTS", eid)
    assert c.execute_command("RG.GETRESULTSBLOCKING", eid) == [["opened"], []]
    assert c.execute_command("RG.GETRESULTS", eid) == [["opened"], []]


def test_getresultsblocking_finished_returns_at_once(c):
    eid = finished_id(c)
    t = time.monotonic()
    reply = c.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert time.monotonic() - t < 1.0
    assert sorted(reply[0]) == ["0", "1", "2"] and reply[1] == []


def test_getresultsblocking_waits_for_running(c, server):
    eid = unblocking(c, GATED)
    other = server.client(socket_timeout=10, retry=Retry(NoBackoff(), 0))
    try:
        wait_status(other, eid, "running")
        # open the gate a bit later from another client while c blocks
        opener = threading.Timer(0.3, lambda: other.set("gate", "1"))
        opener.start()
        t = time.monotonic()
        reply = c.execute_command("RG.GETRESULTSBLOCKING", eid)
        elapsed = time.monotonic() - t
        opener.join()
        assert reply == [["opened"], []]
        assert elapsed >= 0.2, elapsed
    finally:
        other.set("gate", "1")
        other.close()


@pytest.mark.parametrize("cmd", ["RG.GETRESULTS", "RG.GETRESULTSBLOCKING"])
def test_getresults_bad_arguments(c, cmd):
    eid = finished_id(c)
    with pytest.raises(ResponseError):
        c.execute_command(cmd)
    with pytest.raises(ResponseError):
        c.execute_command(cmd, eid, "extra")
    with pytest.raises(ResponseError):
        c.execute_command(cmd, UNKNOWN_ID)


# ---------------------------------------------------------------- bad ids everywhere

@pytest.mark.parametrize("cmd", [
    "RG.GETEXECUTION", "RG.GETRESULTS", "RG.GETRESULTSBLOCKING",
    "RG.DROPEXECUTION", "RG.ABORTEXECUTION",
])
@pytest.mark.parametrize("bad", [
    "nope", "", "-", ZERO, ZERO + "-", ZERO + "-abc", ZERO + "--1", "1" * 40 + "-1",
    UNKNOWN_ID, "x" * 5000,
])
def test_bad_ids_are_errors(c, server, cmd, bad):
    quick = server.client(socket_timeout=5, retry=Retry(NoBackoff(), 0))  # GETRESULTSBLOCKING must not block on a bad id
    try:
        with pytest.raises(ResponseError):
            quick.execute_command(cmd, bad)
    finally:
        quick.close()
    assert server.alive()


# ---------------------------------------------------------------- RG.DROPEXECUTION

def test_dropexecution_finished(c):
    eid = finished_id(c)
    assert eid in dump_executions(c)
    assert c.execute_command("RG.DROPEXECUTION", eid) == "OK"
    with pytest.raises(ResponseError, match="execution plan does not exist"):
        c.execute_command("RG.GETEXECUTION", eid)
    assert eid not in dump_executions(c)
    with pytest.raises(ResponseError):
        c.execute_command("RG.GETRESULTS", eid)
    # dropping twice: it is gone
    with pytest.raises(ResponseError):
        c.execute_command("RG.DROPEXECUTION", eid)


def test_dropexecution_running_refused(c):
    with gated(c) as eid:
        with pytest.raises(ResponseError):
            c.execute_command("RG.DROPEXECUTION", eid)
        assert status_of(c, eid) == "running"
    assert c.execute_command("RG.GETRESULTSBLOCKING", eid) == [["opened"], []]
    assert c.execute_command("RG.DROPEXECUTION", eid) == "OK"


def test_dropexecution_bad_arguments(c):
    eid = finished_id(c)
    with pytest.raises(ResponseError):
        c.execute_command("RG.DROPEXECUTION")
    with pytest.raises(ResponseError):
        c.execute_command("RG.DROPEXECUTION", eid, "extra")
    # still there after the refused calls
    assert status_of(c, eid) == "done"


# ---------------------------------------------------------------- RG.ABORTEXECUTION

def test_abortexecution_running(c):
    with gated(c) as eid:
        assert c.execute_command("RG.ABORTEXECUTION", eid) == "OK"
        wait_status(c, eid, "aborted", timeout=5)
        assert dump_executions(c)[eid]["status"] == "aborted"
    # the gate opened in gated() changes nothing any more
    time.sleep(0.1)
    assert status_of(c, eid) == "aborted"
    # an aborted execution is finished: it can be dropped
    assert c.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert c.ping() is True


def test_abortexecution_bad_arguments(c):
    eid = finished_id(c)
    with pytest.raises(ResponseError):
        c.execute_command("RG.ABORTEXECUTION")
    with pytest.raises(ResponseError):
        c.execute_command("RG.ABORTEXECUTION", eid, "extra")
    assert status_of(c, eid) == "done"


# ---------------------------------------------------------------- RG.DUMPEXECUTIONS

def test_dumpexecutions_shape(c):
    ids = [finished_id(c) for _ in range(3)]
    raw = c.execute_command("RG.DUMPEXECUTIONS")
    assert isinstance(raw, list)
    for entry in raw:
        # 1.2's three, then when it started (unix ms) and how long it ran.
        assert entry[0::2] == ["executionId", "status", "registered", "startedAt",
                               "durationMs"], entry
        assert ID_RE.match(entry[1])
        assert entry[3] in STATUSES
        assert entry[5] in (0, 1)
        assert abs(entry[7] / 1000 - time.time()) < 600 and entry[9] >= 0, entry
    d = dump_executions(c)
    for eid in ids:
        assert d[eid]["status"] == "done"
        assert d[eid]["registered"] == 0


def test_dumpexecutions_shows_running(c):
    with gated(c) as eid:
        assert dump_executions(c)[eid]["status"] == "running"
    assert dump_executions(c)[eid]["status"] == "done"


def test_a_running_execution_shows_its_progress(c):
    # A job over 50 keys whose step waits at one key for a gate: RG.GETEXECUTION shows the
    # records read so far and the time so far, RG.DUMPEXECUTIONS the time so far.
    c.mset({f"pg:{i:02}": i for i in range(50)})
    code = textwrap.dedent("""
        import time
        def step(x):
            if x['key'] == 'pg:25':
                deadline = time.time() + 20
                while time.time() < deadline and execute('exists', 'gate') == 0:
                    time.sleep(0.01)
            return x['key']
        GB().map(step).run('pg:*')
    """)
    batch = c.execute_command("RG.CONFIGGET", "BatchSize")[0]
    c.execute_command("RG.CONFIGSET", "BatchSize", "10")
    try:
        eid = unblocking(c, code)
        wait_until(lambda: get_plan(c, eid)["records_read"] >= 10, what="records read")
        time.sleep(0.3)
        p = get_plan(c, eid)
        assert p["status"] == "running"
        # At least the batch holding the gated key; SCAN's order decides how many more.
        assert 10 <= p["records_read"] <= 50, p
        assert p["total_duration"] >= 250, p
        assert abs(p["started_at"] / 1000 - time.time()) < 60, p
        assert dump_executions(c)[eid]["durationMs"] >= 250
        c.set("gate", "1")
        wait_status(c, eid, "done")
        p = get_plan(c, eid)
        assert p["records_read"] == 50 and p["results"] == 50, p
        assert dump_executions(c)[eid]["durationMs"] == p["total_duration"]
    finally:
        c.set("gate", "1")
        c.execute_command("RG.CONFIGSET", "BatchSize", batch)


def test_dumpexecutions_extra_argument_refused(c):
    with pytest.raises(ResponseError):
        c.execute_command("RG.DUMPEXECUTIONS", "extra")


def test_answered_runs_are_dropped_unblocking_ones_kept(c):
    """As in RedisGears 1.2: a run whose client waited for its results (RG.PYEXECUTE
    without UNBLOCKING, sync or async, and RG.TRIGGER) is dropped once answered; a run
    started with UNBLOCKING stays until dropped."""
    before = set(dump_executions(c))
    pyexecute(c, THREE)
    assert pyexecute(c, "GB('ShardsIDReader').run()")[1] == []
    assert pyexecute(c, "GB('ShardsIDReader').map(lambda x: 1).run(mode='sync')")[0] == ["1"]
    pyexecute(c, "GB('CommandReader').map(lambda x: len(x)).register(trigger='t_dropped')")
    assert c.execute_command("RG.TRIGGER", "t_dropped", "a") == ["2"]
    assert set(dump_executions(c)) == before
    eid = pyexecute(c, THREE, "UNBLOCKING")
    c.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert dump_executions(c)[eid]["status"] == "done"
    for rid in [r[1] for r in c.execute_command("RG.DUMPREGISTRATIONS")]:
        c.execute_command("RG.UNREGISTER", rid)


def test_max_executions_drops_oldest(fresh_server):
    s = fresh_server(module_args=["MaxExecutions", 3])
    c = s.client(socket_timeout=60, retry=Retry(NoBackoff(), 0))
    assert str(c.execute_command("RG.CONFIGGET", "MaxExecutions")[0]) == "3"
    ids = [finished_id(c) for _ in range(5)]
    kept = set(dump_executions(c))
    assert kept == set(ids[-3:]), (
        f"right after GETRESULTSBLOCKING of the 5th: kept {sorted(kept)}, expected the last 3 "
        f"of {ids} (is the registry trimmed only after the waiting client is released?)")
    for old in ids[:2]:
        with pytest.raises(ResponseError, match="execution plan does not exist"):
            c.execute_command("RG.GETEXECUTION", old)
    for kept in ids[-3:]:
        assert status_of(c, kept) == "done"
    # lowered at run time
    assert c.execute_command("RG.CONFIGSET", "MaxExecutions", 2) == ["OK"]
    newest = finished_id(c)
    assert set(dump_executions(c)) == {ids[-1], newest}
    # a run whose client waits is dropped once answered: it pushes out none of those kept
    pyexecute(c, THREE)
    assert set(dump_executions(c)) == {ids[-1], newest}


# ---------------------------------------------------------------- RG.CONFIGGET / RG.CONFIGSET

DEFAULTS = {
    "MaxExecutions": 1000,
    "MaxExecutionsPerRegistration": 100,
    "MaxResultsBytes": 256 << 20,
    "ProfileExecutions": 0,
    "PythonAttemptTraceback": 1,
    "ExecutionThreads": 3,
    "ExecutionMaxIdleTime": 5000,
    "SendMsgRetries": 3,
    "BatchSize": 512,
    "LockSliceMicros": 1000,
    "MaxPendingEvents": 100000,
    "PythonEnabled": 1,
    "WasmMaxCallMillis": 500,
    "WasmMaxMemoryMB": 64,
}
LOAD_ONLY = ["ExecutionThreads", "PythonEnabled"]
RUNTIME = [n for n in DEFAULTS if n not in LOAD_ONLY]


def other_value(name):
    d = DEFAULTS[name]
    if name in ("ProfileExecutions", "PythonAttemptTraceback"):
        return 1 - d
    return d * 2


@pytest.fixture
def cfg(fresh_server):
    """A client of a server of this test alone (config changes stay here)."""
    s = fresh_server()
    cl = s.client(socket_timeout=60, retry=Retry(NoBackoff(), 0))
    yield cl
    cl.close()


def test_configget_defaults(cfg):
    names = list(DEFAULTS)
    values = cfg.execute_command("RG.CONFIGGET", *names)
    assert isinstance(values, list) and len(values) == len(names)
    for name, value in zip(names, values):
        assert not isinstance(value, ResponseError), (name, value)
        assert str(value) == str(DEFAULTS[name]), (name, value)


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_configget_each_default(cfg, name):
    (value,) = cfg.execute_command("RG.CONFIGGET", name)
    assert str(value) == str(DEFAULTS[name])


def test_configget_case_insensitive(cfg):
    values = cfg.execute_command("RG.CONFIGGET", "maxexecutions", "BATCHSIZE", "pRoFiLeExEcUtIoNs")
    assert [str(v) for v in values] == ["1000", "512", "0"]


def test_configget_unknown_is_error_element(cfg):
    values = cfg.execute_command("RG.CONFIGGET", "BatchSize", "NoSuchConfigXyz", "MaxExecutions")
    assert len(values) == 3
    assert str(values[0]) == "512"
    assert isinstance(values[1], ResponseError), values
    assert str(values[2]) == "1000"


def test_configget_no_arguments(cfg):
    with pytest.raises(ResponseError):
        cfg.execute_command("RG.CONFIGGET")


@pytest.mark.parametrize("name", RUNTIME)
def test_configset_runtime_names(cfg, name):
    v = other_value(name)
    assert cfg.execute_command("RG.CONFIGSET", name, v) == ["OK"]
    (got,) = cfg.execute_command("RG.CONFIGGET", name)
    assert str(got) == str(v)


def test_configset_several_pairs(cfg):
    reply = cfg.execute_command("RG.CONFIGSET", "MaxExecutions", 10, "BatchSize", 100)
    assert reply == ["OK", "OK"]
    assert [str(v) for v in cfg.execute_command("RG.CONFIGGET", "MaxExecutions", "BatchSize")] == ["10", "100"]


def test_configset_case_insensitive(cfg):
    assert cfg.execute_command("RG.CONFIGSET", "batchsize", 7) == ["OK"]
    assert str(cfg.execute_command("RG.CONFIGGET", "BatchSize")[0]) == "7"
    assert str(cfg.execute_command("RG.CONFIGGET", "BATCHSIZE")[0]) == "7"


def test_configset_unknown_name_saved_as_extra(cfg):
    reply = cfg.execute_command("RG.CONFIGSET", "MyExtraKey", "hello")
    assert reply == ["OK - value was saved in extra config dictionary"]
    assert cfg.execute_command("RG.CONFIGGET", "MyExtraKey") == ["hello"]
    code = "GB('ShardsIDReader').map(lambda x: gearsConfigGet('MyExtraKey')).run()"
    assert pyexecute(cfg, code) == [["hello"], []]
    # overwrite
    reply = cfg.execute_command("RG.CONFIGSET", "MyExtraKey", "world")
    assert len(reply) == 1 and reply[0].startswith("OK")
    assert cfg.execute_command("RG.CONFIGGET", "MyExtraKey") == ["world"]


def test_configset_mixed_known_and_unknown(cfg):
    reply = cfg.execute_command("RG.CONFIGSET", "BatchSize", 64, "SomethingElse", "v")
    assert reply == ["OK", "OK - value was saved in extra config dictionary"]
    assert [str(v) for v in cfg.execute_command("RG.CONFIGGET", "BatchSize", "SomethingElse")] == ["64", "v"]


@pytest.mark.parametrize("name", LOAD_ONLY + [n.lower() for n in LOAD_ONLY])
def test_configset_load_only_refused(cfg, name):
    reply = call(cfg, "RG.CONFIGSET", name, 0 if "python" in name.lower() else 5)
    assert refused(reply), reply
    canonical = [n for n in DEFAULTS if n.lower() == name.lower()][0]
    assert str(cfg.execute_command("RG.CONFIGGET", canonical)[0]) == str(DEFAULTS[canonical])
    # python still runs
    assert pyexecute(cfg, THREE)[1] == []


def test_configset_load_only_refused_per_pair(cfg):
    reply = cfg.execute_command("RG.CONFIGSET", "BatchSize", 100, "ExecutionThreads", 5, "MaxExecutions", 50)
    assert isinstance(reply, list) and len(reply) == 3, reply
    assert reply[0] == "OK"
    assert isinstance(reply[1], ResponseError)
    assert reply[2] == "OK"
    values = cfg.execute_command("RG.CONFIGGET", "BatchSize", "ExecutionThreads", "MaxExecutions")
    assert [str(v) for v in values] == ["100", "3", "50"]


@pytest.mark.parametrize("name", ["MaxExecutions", "BatchSize", "ProfileExecutions", "LockSliceMicros"])
@pytest.mark.parametrize("bad", ["abc", "12abc", "", "1.5e"])
def test_configset_bad_value_refused(cfg, name, bad):
    reply = call(cfg, "RG.CONFIGSET", name, bad)
    assert refused(reply), reply
    assert str(cfg.execute_command("RG.CONFIGGET", name)[0]) == str(DEFAULTS[name])


def test_configset_arity(cfg):
    with pytest.raises(ResponseError):
        cfg.execute_command("RG.CONFIGSET")
    with pytest.raises(ResponseError):
        cfg.execute_command("RG.CONFIGSET", "BatchSize")
    # an odd number of arguments is refused as a whole: nothing half-applied
    with pytest.raises(ResponseError):
        cfg.execute_command("RG.CONFIGSET", "BatchSize", 100, "MaxExecutions")
    assert str(cfg.execute_command("RG.CONFIGGET", "BatchSize")[0]) == "512"


def test_configset_batchsize_used_by_executions(cfg):
    """BatchSize really is read at run time: results still complete with a tiny batch."""
    assert cfg.execute_command("RG.CONFIGSET", "BatchSize", 1) == ["OK"]
    code = "def gen():\n    yield from range(100)\nGB('PythonReader').map(lambda x: x * 2).run(gen)\n"
    results, errors = pyexecute(cfg, code)
    assert errors == []
    assert sorted(int(x) for x in results) == [x * 2 for x in range(100)]


# ---------------------------------------------------------------- module load arguments

def test_load_args_set_config(fresh_server):
    s = fresh_server(module_args=[
        "MaxExecutions", 7, "BatchSize", 100, "ExecutionThreads", 2,
        "ProfileExecutions", 1, "LockSliceMicros", 2000,
    ])
    c = s.client()
    values = c.execute_command("RG.CONFIGGET", "MaxExecutions", "BatchSize", "ExecutionThreads",
                               "ProfileExecutions", "LockSliceMicros", "MaxPendingEvents")
    assert [str(v) for v in values] == ["7", "100", "2", "1", "2000", "100000"]
    assert pyexecute(c, THREE)[1] == []


def test_load_args_case_insensitive(fresh_server):
    s = fresh_server(module_args=["maxexecutions", 9, "BATCHSIZE", 33])
    c = s.client()
    assert [str(v) for v in c.execute_command("RG.CONFIGGET", "MaxExecutions", "BatchSize")] == ["9", "33"]


def test_load_args_unknown_legacy_still_load(fresh_server):
    s = fresh_server(module_args=["Plugin", "/x", "CreateVenv", 0, "MaxExecutions", 11])
    c = s.client()
    assert c.ping() is True
    assert s.alive()
    assert str(c.execute_command("RG.CONFIGGET", "MaxExecutions")[0]) == "11"
    results, errors = pyexecute(c, THREE)
    assert sorted(results) == ["0", "1", "2"] and errors == []


def test_python_disabled_at_load(fresh_server):
    s = fresh_server(module_args=["PythonEnabled", 0])
    c = s.client()
    assert str(c.execute_command("RG.CONFIGGET", "PythonEnabled")[0]) == "0"
    with pytest.raises(ResponseError):
        pyexecute(c, THREE)
    with pytest.raises(ResponseError):
        pyexecute(c, "x = 1")
    with pytest.raises(ResponseError):
        pyexecute(c, "execute('set', 'py_ran', '1')")
    assert c.exists("py_ran") == 0
    # cannot be switched on at run time
    assert refused(call(c, "RG.CONFIGSET", "PythonEnabled", 1))
    with pytest.raises(ResponseError):
        pyexecute(c, "x = 1")
    assert c.ping() is True and s.alive()


# ---------------------------------------------------------------- RG.PYSTATS

def test_pystats_shape(c):
    pyexecute(c, THREE)
    reply = c.execute_command("RG.PYSTATS")
    assert isinstance(reply, list) and reply[0::2] == ["TotalAllocated", "PeakAllocated", "CurrAllocated"], reply
    d = pairs(reply)
    for k, v in d.items():
        assert isinstance(v, int) and v >= 0, (k, v)
    assert d["PeakAllocated"] >= d["CurrAllocated"]


def test_pystats_extra_argument_refused(c):
    with pytest.raises(ResponseError):
        c.execute_command("RG.PYSTATS", "extra")


# ---------------------------------------------------------------- RG.PYDUMPSESSIONS

def test_pydumpsessions_running_session(c):
    with gated(c, "ID", "my_session", "DESCRIPTION", "my description") as eid:
        found = [pairs(s) for s in sessions(c)]
        mine = [s for s in found if s["ID"] == "my_session"]
        assert len(mine) == 1, found
        raw = [s for s in sessions(c) if s[1] == "my_session"][0]
        assert raw[0::2] == ["ID", "sessionDescription", "refCount", "linked", "dead",
                             "requirementInstallationNeeded", "requirements", "registrations"], raw
        s = mine[0]
        assert s["sessionDescription"] == "my description"
        assert isinstance(s["refCount"], int) and s["refCount"] >= 1
        assert s["linked"] == "primary"
        assert s["dead"] == "false"
        assert s["requirementInstallationNeeded"] == 0
        assert s["requirements"] == []
        assert s["registrations"] == []
    assert c.execute_command("RG.GETRESULTSBLOCKING", eid) == [["opened"], []]
    wait_until(lambda: sessions(c) == [], timeout=5, what="the session to go away")


def test_pydumpsessions_empty_after_finished_runs(c):
    pyexecute(c, THREE, "ID", "s1", "DESCRIPTION", "d1")
    eid = unblocking(c, THREE, "ID", "s2")
    c.execute_command("RG.GETRESULTSBLOCKING", eid)
    pyexecute(c, "x = 1", "ID", "s3")
    wait_until(lambda: sessions(c) == [], timeout=5, what="sessions to go away")


def test_pydumpsessions_empty_after_script_error(c):
    with pytest.raises(ResponseError):
        pyexecute(c, "raise ValueError('x')", "ID", "bad_session")
    wait_until(lambda: sessions(c) == [], timeout=5, what="sessions to go away")


def test_pydumpsessions_unknown_option(c):
    with pytest.raises(ResponseError):
        c.execute_command("RG.PYDUMPSESSIONS", "BOGUS")


# ---------------------------------------------------------------- the server survives all of it

def test_server_alive_at_end(c, server):
    assert c.ping() is True
    assert server.alive()
    # nothing left running from the tests of this file
    running = {k: v for k, v in dump_executions(c).items() if v["status"] not in ("done", "aborted")}
    assert running == {}
