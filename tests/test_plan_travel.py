"""Plans as values: a plan goes through its bytes and runs the same.

A server started with GEARS_TEST_PLAN_TRAVEL=1 (a test-only switch read at load) sends every
plan that another shard will receive (a Python run()'s, a guest's jobs and registrations)
through its byte encoding before using it: a Python plan's functions and values travel as
one cloudpickle, a guest's plan as the guest's name and content hash. (Python
registrations travel as their session's source, which replicas and RDB loading already
replay.) `make test` also runs the operation and recipe
suites with the switch on; this file checks the switch is really taken and what can not
travel.
"""

import pytest

from conftest import (RedisServer, python_groupby_counts, pyexecute, run, run_ok, upload,
                      wait_until, wasm_groupby_counts, wasmrun_ok)

TRAVEL = {"GEARS_TEST_PLAN_TRAVEL": "1"}


@pytest.fixture
def travelling():
    s = RedisServer(env=TRAVEL).start()
    yield s
    alive, log = s.alive(), s.log()
    s.stop()
    assert alive, "redis-server died:\n" + log[-3000:]


@pytest.fixture
def staying(server):
    return server


def load(c):
    for i in range(200):
        c.hset(f"movie:{i}", mapping={"genres": "drama,comedy" if i % 3 else "horror",
                                      "year": 1990 + i % 20})


SCRIPTS = [
    # A closure over the script's globals, a dict zero value, countby (a combiner).
    """
SEP = ','
GB().flatmap(lambda r: r['value']['genres'].split(SEP)).countby().run('movie:*')
""",
    """
GB().map(lambda r: int(r['value']['year'])) \
    .aggregate({'n': 0, 'sum': 0},
               lambda a, y: {'n': a['n'] + 1, 'sum': a['sum'] + y},
               lambda a, b: {'n': a['n'] + b['n'], 'sum': a['sum'] + b['sum']}) \
    .run('movie:*')
""",
    # Readers that call Python.
    """
def gen():
    for i in range(50):
        yield {'i': i}
GB('PythonReader').map(lambda r: r['i'] * 2).filter(lambda x: x % 3 == 0).sort().run(gen)
""",
    "GB('KeysOnlyReader').count().run(patternGenerator=lambda: 'movie:1*')",
    "GB().map(lambda r: r['key']).repartition(lambda k: k).distinct().count().run('movie:*')",
    "GB().groupby(lambda r: r['value']['year'], lambda k, a, r: (a or 0) + 1).run('movie:*', convertToStr=True)",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_python_plans_run_the_same_after_travelling(travelling, staying, script):
    there, here = travelling.client(), staying.client()
    load(there)
    load(here)
    assert sorted(map(str, run_ok(there, script))) == sorted(map(str, run_ok(here, script)))


def test_the_switch_is_taken(travelling):
    wait_until(lambda: "every plan goes through its bytes" in travelling.log(),
               what="the switch logged at load")
    c = travelling.client()
    load(c)
    # A function closing over a lock can not be pickled: the plan can not travel.
    reply = None
    try:
        reply = pyexecute(c, "import threading\nL = threading.Lock()\n"
                             "GB().map(lambda r: L.locked()).run('movie:*')")
    except Exception as e:  # noqa: BLE001 (the error reply is what is checked)
        reply = str(e)
    assert "pickling a Python plan" in str(reply), reply
    # The next plan travels and runs.
    assert python_groupby_counts(run_ok(
        c, "GB().countby(lambda r: r['value']['genres']).run('movie:*')"))["horror"] == 67


def test_guest_plans_travel_by_name_and_hash(travelling, staying):
    there, here = travelling.client(), staying.client()
    for c in (there, here):
        load(c)
        assert upload(c, "genres") == "OK"
    counts = wasm_groupby_counts(wasmrun_ok(there, "genres", "count", "movie:1*"))
    assert counts == wasm_groupby_counts(wasmrun_ok(here, "genres", "count", "movie:1*"))
    assert counts["horror"] > 0 and counts["drama"] > 0
    # The guest's jobs and registrations were checked through their bytes at upload;
    # a plan of native steps only travels too.
    results, errors = run(there, "GB().count().run('movie:*')")
    assert results == ["200"] and errors == []
