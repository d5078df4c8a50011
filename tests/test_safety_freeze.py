"""Nothing a Python recipe does freezes or crashes Redis, and its memory is in sight.

- Python code holding Redis (a sync step, a script, an atomic() block) past
  PythonMaxLockMillis is interrupted with a clear error; Redis answers again at once.
- RG.ABORTEXECUTION cannot be swallowed by a bare `except:`: the run ends aborted and
  its worker is free again.
- Deep recursion in a step ends in RecursionError, never in a SIGSEGV.
- A session's globals are released when its last run or registration ends (RSS drops),
  and INFO shows Python's memory.
"""
import resource
import textwrap
import time

import pytest
import redis

from conftest import pairs, pyexecute, wait_until

BUDGET_MS = 300
OVER_BUDGET = ("Execution was aborted: it held Redis for more than %d ms "
               "(PythonMaxLockMillis)" % BUDGET_MS)

SPIN = """
def spin(x):
    while True:
        pass
"""


@pytest.fixture
def budget(server, r):
    """The shared server with a short budget (the default is restored afterwards)."""
    assert r.execute_command("RG.CONFIGGET", "PythonMaxLockMillis") == [5000]
    assert r.execute_command("RG.CONFIGSET", "PythonMaxLockMillis", BUDGET_MS) == ["OK"]
    yield r
    r.execute_command("RG.CONFIGSET", "PythonMaxLockMillis", 5000)


def ping_ms(c):
    t = time.monotonic()
    assert c.ping()
    return (time.monotonic() - t) * 1000


def run(c, code, *args):
    return pyexecute(c, textwrap.dedent(code), *args)


def test_config_entry_and_bounds(r):
    assert r.execute_command("RG.CONFIGGET", "PythonMaxLockMillis") == [5000]
    for bad in ("0", "9", "600001", "x"):
        reply = r.execute_command("RG.CONFIGSET", "PythonMaxLockMillis", bad)
        assert isinstance(reply[0], redis.exceptions.ResponseError), reply
        assert "PythonMaxLockMillis" in str(reply[0])
    assert r.execute_command("RG.CONFIGGET", "PythonMaxLockMillis") == [5000]


def test_endless_sync_run_is_interrupted(server, budget):
    t = time.monotonic()
    reply = run(budget, SPIN + "GB('ShardsIDReader').map(spin).run(mode='sync')")
    took = time.monotonic() - t
    assert reply == [[], [OVER_BUDGET]]
    assert BUDGET_MS / 1000 <= took < BUDGET_MS / 1000 + 1.0
    assert ping_ms(budget) < 100
    assert "held Redis for more than %d ms" % BUDGET_MS in server.log()


def test_endless_sync_registration_is_interrupted(budget):
    assert run(budget, SPIN + "GB().foreach(spin).register(prefix='spin:*', mode='sync')") == "OK"
    budget.set("other", "1")
    t = time.monotonic()
    assert budget.set("spin:1", "v")  # the command itself completes
    assert time.monotonic() - t < BUDGET_MS / 1000 + 1.0
    assert ping_ms(budget) < 100
    data = pairs(pairs(budget.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    assert data["numFailures"] == 1 and data["lastError"] == OVER_BUDGET
    assert budget.get("spin:1") == "v" and budget.get("other") == "1"


def test_endless_script_is_interrupted(budget):
    with pytest.raises(redis.exceptions.ResponseError, match="PythonMaxLockMillis"):
        run(budget, "while True:\n    pass\n")
    assert ping_ms(budget) < 100


def test_endless_atomic_block_is_interrupted_and_swallowing_does_not_help(budget):
    code = """
    def f(x):
        with atomic():
            execute('set', 'inside', '1')
            while True:
                try:
                    execute('incr', 'n')
                except BaseException:
                    pass
        return 'never'
    GB('ShardsIDReader').map(f).run()
    """
    t = time.monotonic()
    reply = run(budget, code)
    assert time.monotonic() - t < BUDGET_MS / 1000 + 1.0
    assert reply == [[], [OVER_BUDGET]]
    assert ping_ms(budget) < 100
    # The block held the lock: nothing else ran meanwhile, and it ran until the budget.
    assert budget.get("inside") == "1" and int(budget.get("n")) > 0
    # The worker is free and the lock given back: a later run completes.
    assert run(budget, "GB('ShardsIDReader').map(lambda x: 'ok').run()") == [["ok"], []]


def test_budget_off_the_main_thread_leaves_async_steps_alone(budget):
    """An async step that computes past the budget without holding Redis is not cut."""
    code = """
    import time
    def f(x):
        t = time.monotonic()
        while time.monotonic() - t < %f:
            pass
        return 'done'
    GB('ShardsIDReader').map(f).run()
    """ % (2 * BUDGET_MS / 1000)
    assert run(budget, code) == [["done"], []]


def test_swallowed_abort_still_ends_the_run_and_frees_the_worker(server, r):
    code = """
    import time
    def f(x):
        while True:
            try:
                time.sleep(0.02)
            except:
                pass
    GB('ShardsIDReader').map(f).run()
    """
    threads = int(r.execute_command("RG.CONFIGGET", "ExecutionThreads")[0])
    assert threads == 3
    ids = [run(r, code, "UNBLOCKING") for _ in range(threads + 1)]

    def status(i):
        return pairs(pairs(r.execute_command("RG.GETEXECUTION", i)[0])["execution_plan"])["status"]

    wait_until(lambda: sum(status(i) == "running" for i in ids) == threads,
               what="every worker busy")
    for i in ids:
        assert r.execute_command("RG.ABORTEXECUTION", i) == "OK"
        assert ping_ms(r) < 100
    wait_until(lambda: all(status(i) == "aborted" for i in ids), timeout=5,
               what="every swallowing run aborted")
    for i in ids:
        assert r.execute_command("RG.GETRESULTS", i) == [[], ["Execution was aborted"]]
    t = time.monotonic()
    assert run(r, "GB('ShardsIDReader').map(lambda x: 'after').run()") == [["after"], []]
    assert time.monotonic() - t < 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_deep_recursion_is_an_error_not_a_crash(server, r, mode):
    code = """
    import sys
    sys.setrecursionlimit(10**7)
    def f(x):
        l = []
        for _ in range(10**6):
            l = [l]
        return repr(l)
    def g(n):
        return 0 if n == 0 else sorted([n - 1], key=g)[0]
    GB('ShardsIDReader').map(f).run(mode='%s')
    """ % mode
    results, errors = run(r, code)
    assert results == [] and len(errors) == 1
    assert "RecursionError: maximum recursion depth exceeded" in errors[0]
    results, errors = run(r, code.replace("map(f)", "map(lambda x: g(10**6))"))
    assert results == [] and "RecursionError" in errors[0]
    assert r.ping() and server.alive()
    # Clamped to the main thread's stack (the server inherits ours) at 4 KB per level.
    stack = resource.getrlimit(resource.RLIMIT_STACK)[0]
    cap = max(1000, min(stack if stack != resource.RLIM_INFINITY else 8 << 20, 64 << 20) // 4096)
    limit = run(r, "import sys\nGB('ShardsIDReader').map(lambda x: sys.getrecursionlimit()).run()")
    assert limit == [[str(cap)], []]
    assert "clamped to %d" % cap in server.log()


def rss(c):
    return int(c.info("memory")["used_memory_rss"])


def test_unregistered_session_gives_its_memory_back(r):
    before = rss(r)
    assert run(r, """
    big = [str(i) * 10 for i in range(2_000_000)]
    GB().foreach(lambda x: len(big)).register(prefix='big:*')
    """) == "OK"
    held = rss(r)
    assert held > before + 150 * 2**20, (before, held)
    info = r.info("rg")
    assert info["rg_python_sessions"] == 1
    assert info["rg_python_allocated_bytes"] > 150 * 2**20
    reg = pairs(r.execute_command("RG.DUMPREGISTRATIONS")[0])["id"]
    assert r.execute_command("RG.UNREGISTER", reg) == "OK"
    wait_until(lambda: rss(r) < before + 50 * 2**20, timeout=10, what="RSS to drop back")
    # The janitor frees the globals on its own thread: the count follows once it is done.
    wait_until(lambda: r.info("rg")["rg_python_allocated_bytes"] < 50 * 2**20, timeout=10,
               what="Python's allocated bytes to drop back")
    info = r.info("rg")
    assert info["rg_python_sessions"] == 0
    assert info["rg_python_peak_allocated_bytes"] > 150 * 2**20


def test_runs_holding_big_globals_do_not_pile_up(r):
    before = rss(r)
    for _ in range(8):
        reply = run(r, """
        big = bytearray(100 * 2**20)
        GB('ShardsIDReader').map(lambda x: len(big)).run()
        """)
        assert reply == [[str(100 * 2**20)], []]
    wait_until(lambda: rss(r) < before + 150 * 2**20, timeout=10,
               what="RSS to stay below one run's globals")


def test_info_shows_python_memory_and_interruptions(budget):
    info = budget.info("rg")
    for field in ("rg_python_allocated_bytes", "rg_python_peak_allocated_bytes",
                  "rg_python_total_allocated_bytes", "rg_python_sessions",
                  "rg_python_interrupted_over_budget", "rg_python_interrupted_aborted"):
        assert isinstance(info[field], int), (field, info)
    assert info["rg_python_allocated_bytes"] > 0
    over = info["rg_python_interrupted_over_budget"]
    run(budget, SPIN + "GB('ShardsIDReader').map(spin).run(mode='sync')")
    assert budget.info("rg")["rg_python_interrupted_over_budget"] == over + 1
    # Python's blocks are not in used_memory (not allocated through RedisModule_Alloc).
    assert "rg_python_allocated_bytes" in budget.execute_command("INFO", "everything")
