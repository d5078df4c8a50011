"""Bad input: scripts and steps that fail must fail cleanly.

After each case: the server still answers PING, a failed script left no execution behind
(RG.DUMPEXECUTIONS), nothing is left running, and no Python session leaked
(RG.PYDUMPSESSIONS is empty once runs are finished or failed).
OS-level misbehaviour (os._exit, signals, fork...) is out of scope: Python is not sandboxed.
"""
import re
import textwrap
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import pyexecute, wait_until

ID_RE = re.compile(r"^0{40}-\d+$")
ResponseError = redis.exceptions.ResponseError


# ---------------------------------------------------------------- helpers

def pairs(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def dump_executions(c):
    return {pairs(e)["executionId"]: pairs(e) for e in c.execute_command("RG.DUMPEXECUTIONS")}


def get_plan(c, eid):
    reply = c.execute_command("RG.GETEXECUTION", eid)
    return pairs(reply[0][3])


def status_of(c, eid):
    return get_plan(c, eid)["status"]


def sessions(c):
    return c.execute_command("RG.PYDUMPSESSIONS")


def assert_clean(c, server, before_ids=None, failed_script=False):
    """The server is alive, nothing runs, no session leaked, a failed script left no execution."""
    assert c.ping() is True
    assert server.alive(), server.log()[-3000:]
    wait_until(lambda: sessions(c) == [], timeout=5, what="no Python session left")
    execs = dump_executions(c)
    if failed_script:
        assert set(execs) == set(before_ids), "a failed script left an execution behind"
    wait_until(
        lambda: all(e["status"] in ("done", "aborted") for e in dump_executions(c).values()),
        timeout=5, what="no execution left running",
    )


def run_clean(c, code, *args):
    """Run a script expected to finish (with UNBLOCKING, so that its execution is kept);
    returns (results, errors, its execution id)."""
    eid = pyexecute(c, textwrap.dedent(code), "UNBLOCKING", *args)
    reply = c.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert isinstance(reply, list) and len(reply) == 2, reply
    return reply[0], reply[1], eid


@pytest.fixture
def c(server, r):
    cl = server.client(socket_timeout=60, retry=Retry(NoBackoff(), 0))
    yield cl
    cl.close()


# ---------------------------------------------------------------- script errors (top level)

SCRIPT_ERRORS = {
    "syntax": ("def f(:\n    pass\n", "SyntaxError"),
    "indent": ("def f():\nreturn 1\n", "IndentationError"),
    "name": ("undefined_name_xyz + 1\n", "NameError"),
    "value": ("raise ValueError('boom at top')\n", "ValueError"),
    "zerodiv": ("x = 1 / 0\n", "ZeroDivisionError"),
    "import": ("import no_such_module_xyz\n", "ModuleNotFoundError"),
    "recursion": ("def f():\n    return f()\nf()\n", "RecursionError"),
    "sys_exit": ("import sys\nsys.exit()\n", "SystemExit"),
    "sys_exit_code": ("import sys\nsys.exit(3)\n", "SystemExit"),
    "sys_exit_msg": ("import sys\nsys.exit('bye')\n", "SystemExit"),
    "raise_systemexit": ("raise SystemExit(0)\n", "SystemExit"),
    "keyboard_interrupt": ("raise KeyboardInterrupt()\n", "KeyboardInterrupt"),
    "base_exception": ("class MyBase(BaseException):\n    pass\nraise MyBase('x')\n", "MyBase"),
    "error_in_gb_before_run": (
        "def gen():\n    yield 1\nb = GB('PythonReader')\nraise RuntimeError('before run')\nb.run(gen)\n",
        "RuntimeError"),
}


@pytest.mark.parametrize("name", list(SCRIPT_ERRORS))
def test_script_error(c, server, name):
    code, exc_name = SCRIPT_ERRORS[name]
    before = set(dump_executions(c))
    with pytest.raises(ResponseError) as info:
        pyexecute(c, code)
    assert exc_name in str(info.value), str(info.value)
    assert_clean(c, server, before, failed_script=True)


@pytest.mark.parametrize("name", ["syntax", "name", "sys_exit", "value"])
def test_script_error_with_session_id(c, server, name):
    code, exc_name = SCRIPT_ERRORS[name]
    before = set(dump_executions(c))
    with pytest.raises(ResponseError, match=exc_name):
        pyexecute(c, code, "ID", "err_session_" + name, "DESCRIPTION", "d")
    assert_clean(c, server, before, failed_script=True)
    # the same session id can be used again
    assert pyexecute(c, "x = 1", "ID", "err_session_" + name) == "OK"
    assert_clean(c, server)


@pytest.mark.parametrize("name", ["syntax", "name", "sys_exit"])
def test_script_error_with_unblocking(c, server, name):
    code, exc_name = SCRIPT_ERRORS[name]
    before = set(dump_executions(c))
    with pytest.raises(ResponseError, match=exc_name):
        pyexecute(c, code, "UNBLOCKING")
    assert_clean(c, server, before, failed_script=True)


def test_script_error_message_carries_python_message(c, server):
    with pytest.raises(ResponseError, match="boom at top"):
        pyexecute(c, "raise ValueError('boom at top')")
    assert_clean(c, server)


def test_script_error_has_no_side_effect_after_error(c, server):
    with pytest.raises(ResponseError):
        pyexecute(c, "execute('set', 'k1', 'v')\nraise ValueError('x')\nexecute('set', 'k2', 'v')\n")
    assert c.exists("k2") == 0
    assert_clean(c, server)


def test_many_script_errors_in_a_row(c, server):
    before = set(dump_executions(c))
    for i in range(200):
        code, exc = list(SCRIPT_ERRORS.values())[i % len(SCRIPT_ERRORS)]
        with pytest.raises(ResponseError):
            pyexecute(c, code)
    assert_clean(c, server, before, failed_script=True)
    # Python still works afterwards
    assert pyexecute(c, "GB('ShardsIDReader').map(lambda x: 'fine').run()") == [["fine"], []]


# ---------------------------------------------------------------- odd code payloads

def test_empty_script_is_ok(c, server):
    assert pyexecute(c, "") == "OK"
    assert_clean(c, server)


def test_non_utf8_code(c, server):
    raw = server.client(decode_responses=False, socket_timeout=60, retry=Retry(NoBackoff(), 0))
    try:
        # Python rejects source that is not UTF-8 (SyntaxError); a module that decodes it
        # leniently instead may run it: either way nothing breaks
        try:
            reply = raw.execute_command("RG.PYEXECUTE", b"x = '\xff\xfe\xfa'\nGB('ShardsIDReader').run()\n")
        except ResponseError:
            pass
        else:
            assert isinstance(reply, list) and len(reply) == 2, reply
        assert_clean(c, server)
    finally:
        raw.close()


def test_nul_byte_in_code_is_error(c, server):
    before = set(dump_executions(c))
    with pytest.raises(ResponseError):
        pyexecute(c, "x = 1\x00\nGB().run()\n")
    assert_clean(c, server, before, failed_script=True)


def test_huge_script_ok(c, server):
    code = "".join(f"v{i} = {i}\n" for i in range(50000)) + \
        "GB('ShardsIDReader').map(lambda x: v49999).run()\n"
    assert pyexecute(c, code) == [["49999"], []]
    assert_clean(c, server)


# ---------------------------------------------------------------- failed run() calls

FAILED_RUNS = {
    "unknown_reader": "GB('NoSuchReader').run()\n",
    "generator_not_callable": "GB('PythonReader').run(42)\n",
    "bad_mode": "GB('ShardsIDReader').run(mode='no_such_mode')\n",
}


@pytest.mark.parametrize("name", list(FAILED_RUNS))
def test_failed_run(c, server, name):
    before = set(dump_executions(c))
    with pytest.raises(ResponseError):
        pyexecute(c, FAILED_RUNS[name], "ID", "failed_run_" + name)
    assert_clean(c, server, before, failed_script=True)


def test_second_run_refused_leaves_no_second_execution(c, server):
    code = "def gen():\n    yield 1\nGB('PythonReader').run(gen)\nGB('PythonReader').run(gen)\n"
    before = set(dump_executions(c))
    with pytest.raises(ResponseError, match="Can not run more then 1 executions in a single script"):
        pyexecute(c, code)
    assert len(set(dump_executions(c)) - before) <= 1
    assert_clean(c, server)


# ---------------------------------------------------------------- exceptions inside steps

STEP_FAIL = """
import sys
def f(x):
    if x == 5:
        {raise_stmt}
    return x * 10
def gen():
    yield from range(10)
GB('PythonReader').map(f).run(gen{run_args})
"""


@pytest.mark.parametrize("raise_stmt,exc_name", [
    ("raise ValueError('bad five')", "ValueError"),
    ("return 1 / 0", "ZeroDivisionError"),
    ("return undefined_name_in_step", "NameError"),
    ("sys.exit()", "SystemExit"),
    ("sys.exit(7)", "SystemExit"),
    ("raise KeyboardInterrupt()", "KeyboardInterrupt"),
    ("raise GeneratorExit()", "GeneratorExit"),
    ("execute('no_such_command_xyz')", ""),
    ("execute('incr', 'not_a_number')", "not an integer"),
], ids=["value", "zerodiv", "name", "sys_exit", "sys_exit_code", "keyboard", "genexit", "bad_cmd", "wrongtype"])
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_exception_in_step_is_error_entry(c, server, raise_stmt, exc_name, mode):
    c.set("not_a_number", "abc")
    run_args = "" if mode == "async" else ", mode='sync'"
    results, errors, eid = run_clean(c, STEP_FAIL.format(raise_stmt=raise_stmt, run_args=run_args))
    assert sorted(int(x) for x in results) == [x * 10 for x in range(10) if x != 5]
    assert len(errors) == 1, errors
    assert isinstance(errors[0], str) and errors[0]
    assert exc_name in errors[0], errors[0]
    p = get_plan(c, eid)
    assert p["status"] == "done"
    assert p["results"] == 9
    assert len(p["errors"]) == 1 and exc_name in p["errors"][0]
    assert_clean(c, server)


def test_every_record_fails(c, server):
    code = """
    def gen():
        yield from range(20)
    GB('PythonReader').map(lambda x: 1 / 0).run(gen)
    """
    results, errors, eid = run_clean(c, code)
    assert results == []
    assert len(errors) == 20
    assert all("ZeroDivisionError" in e for e in errors)
    assert status_of(c, eid) == "done"
    assert_clean(c, server)


def test_user_base_exception_in_step(c, server):
    code = """
    class Boom(BaseException):
        pass
    def f(x):
        if x == 1:
            raise Boom('custom base')
        return x
    def gen():
        yield from range(3)
    GB('PythonReader').map(f).run(gen)
    """
    results, errors, _ = run_clean(c, code)
    assert sorted(results) == ["0", "2"]
    assert len(errors) == 1 and "custom base" in errors[0]
    assert_clean(c, server)


@pytest.mark.parametrize("op", ["filter", "flatmap", "foreach"])
def test_exception_in_other_step_kinds(c, server, op):
    code = f"""
    def f(x):
        if x == 2:
            raise ValueError('bad two')
        return [x] if '{op}' == 'flatmap' else True
    def gen():
        yield from range(4)
    GB('PythonReader').{op}(f).run(gen)
    """
    results, errors, _ = run_clean(c, code)
    assert sorted(results) == ["0", "1", "3"]
    assert len(errors) == 1 and "bad two" in errors[0]
    assert_clean(c, server)


def test_exception_in_later_step_of_a_chain(c, server):
    code = """
    def g(x):
        if x == 30:
            raise ValueError('second step')
        return x + 1
    def gen():
        yield from range(5)
    GB('PythonReader').map(lambda x: x * 10).map(g).map(lambda x: x * 2).run(gen)
    """
    results, errors, _ = run_clean(c, code)
    assert sorted(int(x) for x in results) == [2, 22, 42, 82]
    assert len(errors) == 1 and "second step" in errors[0]
    assert_clean(c, server)


def test_exception_in_accumulate(c, server):
    code = """
    def acc(a, r):
        if r == 3:
            raise ValueError('acc three')
        return (a or 0) + r
    def gen():
        yield from range(5)
    GB('PythonReader').accumulate(acc).run(gen)
    """
    reply = pyexecute(c, textwrap.dedent(code))
    assert isinstance(reply, list) and len(reply) == 2
    assert any("acc three" in e for e in reply[1]), reply
    assert_clean(c, server)


def test_recursion_in_step(c, server):
    code = """
    def rec(n):
        return rec(n + 1)
    def gen():
        yield from range(3)
    GB('PythonReader').map(rec).run(gen)
    """
    results, errors, _ = run_clean(c, code)
    assert results == []
    assert len(errors) == 3 and all("RecursionError" in e for e in errors)
    assert_clean(c, server)


def test_generator_reader_raises(c, server):
    code = """
    def gen():
        yield 1
        yield 2
        raise ValueError('reader broke')
    GB('PythonReader').run(gen)
    """
    try:
        reply = pyexecute(c, textwrap.dedent(code))
    except ResponseError as e:
        assert "reader broke" in str(e)
    else:
        assert isinstance(reply, list) and len(reply) == 2
        assert any("reader broke" in e for e in reply[1]), reply
    assert_clean(c, server)


def test_traceback_config(c, server):
    code = """
    def bad_step_fn(x):
        raise ValueError('traced')
    GB('ShardsIDReader').map(bad_step_fn).run()
    """
    try:
        assert c.execute_command("RG.CONFIGSET", "PythonAttemptTraceback", 0) == ["OK"]
        _, errors, _ = run_clean(c, code)
        assert len(errors) == 1
        assert "ValueError: traced" in errors[0]
        assert "bad_step_fn" not in errors[0], errors[0]
        assert c.execute_command("RG.CONFIGSET", "PythonAttemptTraceback", 1) == ["OK"]
        _, errors, _ = run_clean(c, code)
        assert len(errors) == 1
        assert "traced" in errors[0]
        assert "bad_step_fn" in errors[0], errors[0]  # the traceback names the function
    finally:
        c.execute_command("RG.CONFIGSET", "PythonAttemptTraceback", 1)
    assert_clean(c, server)


# ---------------------------------------------------------------- endless loops, aborted

SPIN = """
def spin(x):
    while True:
        pass
GB('ShardsIDReader').map(spin).run()
"""

SPIN_SWALLOW = """
def spin(x):
    while True:
        try:
            sum(range(100))
        except Exception:
            pass
GB('ShardsIDReader').map(spin).run()
"""

ASYNC_SPIN = """
async def spin(x):
    while True:
        pass
GB('ShardsIDReader').map(spin).run()
"""


def abort_within_one_second(cl, code):
    eid = pyexecute(cl, code, "UNBLOCKING", "ID", "spin_session")
    assert ID_RE.match(eid), eid
    wait_until(lambda: status_of(cl, eid) == "running", timeout=10, interval=0.01,
               what="the spinning execution to run")
    time.sleep(0.3)  # well inside the loop
    assert status_of(cl, eid) == "running"
    t0 = time.monotonic()
    assert cl.execute_command("RG.ABORTEXECUTION", eid) == "OK"
    deadline = t0 + 1.0
    st = None
    while time.monotonic() < deadline:
        st = status_of(cl, eid)
        if st == "aborted":
            break
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    assert st == "aborted", f"status {st!r} {elapsed:.3f}s after RG.ABORTEXECUTION"
    return eid


@pytest.mark.parametrize("code", [SPIN, SPIN_SWALLOW], ids=["plain", "swallows_exception"])
def test_endless_loop_aborted_within_one_second(fresh_server, code):
    # one worker: if the aborted loop kept it, the next job could not run
    s = fresh_server(module_args=["ExecutionThreads", 1])
    cl = s.client(socket_timeout=30, retry=Retry(NoBackoff(), 0))
    eid = abort_within_one_second(cl, code)
    assert cl.ping() is True
    assert dump_executions(cl)[eid]["status"] == "aborted"
    wait_until(lambda: sessions(cl) == [], timeout=5, what="the session of the aborted run to go")
    # the worker is free again
    results = pyexecute(cl, "GB('ShardsIDReader').map(lambda x: 'after').run()")
    assert results == [["after"], []]
    assert cl.execute_command("RG.DROPEXECUTION", eid) == "OK"
    assert s.alive()


def test_endless_loop_in_async_def_step_aborted(fresh_server):
    """An `async def` step that never awaits: abort stops it, and later async steps still run
    (a coroutine left spinning would block every later coroutine)."""
    s = fresh_server(module_args=["ExecutionThreads", 1])
    cl = s.client(socket_timeout=30, retry=Retry(NoBackoff(), 0))
    abort_within_one_second(cl, ASYNC_SPIN)
    assert cl.ping() is True
    wait_until(lambda: sessions(cl) == [], timeout=5, what="the session of the aborted run to go")
    later = """
async def am(x):
    return 'after'
GB('ShardsIDReader').map(am).run()
"""
    eid2 = pyexecute(cl, later, "UNBLOCKING")
    quick = s.client(socket_timeout=10, retry=Retry(NoBackoff(), 0))
    try:
        assert quick.execute_command("RG.GETRESULTSBLOCKING", eid2) == [["after"], []]
    except redis.exceptions.TimeoutError:
        raise AssertionError("an async def step never ran after an aborted spinning coroutine")
    finally:
        quick.close()
    assert s.alive()


def test_endless_loop_aborted_on_shared_server(c, server):
    eid = abort_within_one_second(c, SPIN)
    assert_clean(c, server)
    assert c.execute_command("RG.DROPEXECUTION", eid) == "OK"


def test_pings_served_while_python_spins(c, server):
    """A worker spinning in Python (holding the GIL) must not stop Redis from serving."""
    eid = pyexecute(c, SPIN, "UNBLOCKING")
    try:
        wait_until(lambda: status_of(c, eid) == "running", timeout=10, what="running")
        other = server.client(socket_timeout=5, retry=Retry(NoBackoff(), 0))
        for _ in range(50):
            t = time.monotonic()
            assert other.ping() is True
            assert time.monotonic() - t < 0.5
        other.set("k", "v")
        assert other.get("k") == "v"
        other.close()
    finally:
        c.execute_command("RG.ABORTEXECUTION", eid)
    wait_until(lambda: status_of(c, eid) == "aborted", timeout=5, what="aborted")
    assert_clean(c, server)


# ---------------------------------------------------------------- at the end

def test_nothing_left_behind(c, server):
    assert_clean(c, server)
