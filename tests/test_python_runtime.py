"""The runtime API a recipe sees, and C extension modules inside the embedded interpreter.

execute(), atomic(), log(), configGet(), gearsConfigGet(), hashtag(), isAsyncAllow(),
async def steps, gearsFuture(); json/hashlib/math/decimal/ctypes C extensions.
"""
import json
import textwrap
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import pyexecute, wait_until

ResponseError = redis.exceptions.ResponseError


def run_ok(c, code, *args):
    """Run a blocking recipe; assert no errors; return the results."""
    reply = pyexecute(c, textwrap.dedent(code), *args)
    assert isinstance(reply, list) and len(reply) == 2, reply
    results, errors = reply
    assert errors == [], errors
    return results


def run_json(c, body, mode="async"):
    """Run `body` (the body of `def f(x):` that returns a JSON-able value) on one record."""
    code = "import json\ndef f(x):\n" + textwrap.indent(textwrap.dedent(body), "    ") + \
        f"\nGB('ShardsIDReader').map(lambda x: json.dumps(f(x))).run(mode='{mode}')\n"
    results = run_ok(c, code)
    assert len(results) == 1, results
    return json.loads(results[0])


@pytest.fixture
def c(server, r):
    cl = server.client(socket_timeout=60, retry=Retry(NoBackoff(), 0))
    yield cl
    cl.close()


def test_gb_and_gearsbuilder_are_available(c):
    out = run_json(c, "return [GB is GearsBuilder, callable(execute), callable(atomic)]")
    assert out == [True, True, True]


# ---------------------------------------------------------------- execute()

@pytest.mark.parametrize("mode", ["async", "sync"])
def test_execute_reply_types(c, mode):
    c.set("s", "v")
    c.rpush("l", "a", "b")
    c.hset("h", "f", "1")
    out = run_json(c, """
        res = {}
        def t(name, v):
            res[name] = [type(v).__name__, v]
        t('set', execute('set', 'k', 'val'))
        t('get', execute('get', 'k'))
        t('get_missing', execute('get', 'no_such_key'))
        t('incr', execute('incr', 'n'))
        t('incrby', execute('incrby', 'n', 41))
        t('lrange', execute('lrange', 'l', 0, -1))
        t('empty_list', execute('lrange', 'no_such_list', 0, -1))
        t('hgetall', execute('hgetall', 'h'))
        t('ping', execute('ping'))
        t('exists', execute('exists', 's'))
        t('set_int_arg', execute('set', 'intarg', 5))
        t('get_int_arg', execute('get', 'intarg'))
        return res
    """, mode=mode)
    assert out["set"] == ["str", "OK"]
    assert out["get"] == ["str", "val"]
    assert out["get_missing"] == ["NoneType", None]
    assert out["incr"] == ["int", 1]
    assert out["incrby"] == ["int", 42]
    assert out["lrange"] == ["list", ["a", "b"]]
    assert out["empty_list"] == ["list", []]
    assert out["hgetall"] == ["list", ["f", "1"]]
    assert out["ping"] == ["str", "PONG"]
    assert out["exists"] == ["int", 1]
    assert out["set_int_arg"] == ["str", "OK"]
    assert out["get_int_arg"] == ["str", "5"]
    assert c.get("k") == "val"
    assert c.get("n") == "42"


def test_execute_nested_reply(c):
    c.set("a", "1")
    out = run_json(c, """
        cur, keys = execute('scan', '0', 'COUNT', 1000)
        return [type(cur).__name__, sorted(keys)]
    """)
    assert out == ["str", ["a"]]


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_execute_raises_on_redis_errors(c, mode):
    c.set("str_key", "abc")
    out = run_json(c, """
        res = []
        for args in (('incr', 'str_key'), ('no_such_command_xyz',), ('get',), ('lpush', 'str_key', 'x')):
            try:
                execute(*args)
                res.append('no error')
            except Exception as e:
                res.append(str(e))
        return res
    """, mode=mode)
    assert len(out) == 4
    assert all(m != "no error" for m in out), out
    assert "not an integer" in out[0]
    assert "WRONGTYPE" in out[3] or "wrong kind" in out[3], out[3]


def test_execute_error_uncaught_becomes_error_entry(c):
    c.set("str_key", "abc")
    reply = pyexecute(c, "GB('ShardsIDReader').map(lambda x: execute('incr', 'str_key')).run()")
    assert reply[0] == []
    assert len(reply[1]) == 1 and "not an integer" in reply[1][0]


def test_execute_at_top_level(c):
    assert pyexecute(c, "execute('set', 'top', 'level')\nexecute('rpush', 'tl', 1, 2)\n") == "OK"
    assert c.get("top") == "level"
    assert c.lrange("tl", 0, -1) == ["1", "2"]


def test_execute_in_keysreader_steps(c):
    for i in range(100):
        c.set(f"key:{i}", i)
    results = run_ok(c, """
        GB().foreach(lambda r: execute('set', 'copy:' + r['key'], r['value'])).map(lambda r: r['key']).run('key:*')
    """)
    assert len(results) == 100
    for i in range(100):
        assert c.get(f"copy:key:{i}") == str(i)


# ---------------------------------------------------------------- atomic()

def test_atomic_context_manager(c):
    out = run_json(c, """
        with atomic():
            execute('set', 'a1', '1')
            execute('incr', 'a1')
        with atomic():
            with atomic():  # nests
                execute('incr', 'a1')
        return execute('get', 'a1')
    """)
    assert out == "3"


def test_atomic_releases_on_exception(c):
    out = run_json(c, """
        try:
            with atomic():
                execute('set', 'a2', '1')
                raise ValueError('inside atomic')
        except ValueError:
            pass
        return execute('get', 'a2')
    """)
    assert out == "1"
    # the lock was given back: Redis serves
    assert c.ping() is True


def test_atomic_block_is_atomic_for_other_clients(c, server):
    """While a step holds atomic() (sleeping 0.3 s inside), no other client sees the key."""
    code = textwrap.dedent("""
        import time
        def f(x):
            with atomic():
                execute('set', 'atom', '1')
                time.sleep(0.3)
                execute('del', 'atom')
            execute('set', 'atom_done', '1')
            return 'ok'
        GB('ShardsIDReader').map(f).run()
    """)
    eid = pyexecute(c, code, "UNBLOCKING")
    watcher = server.client(socket_timeout=10, retry=Retry(NoBackoff(), 0))
    seen = 0
    polls = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        polls += 1
        seen += watcher.exists("atom")
        if watcher.exists("atom_done"):
            break
    watcher.close()
    assert c.execute_command("RG.GETRESULTSBLOCKING", eid) == [["ok"], []]
    assert c.exists("atom_done") == 1
    assert seen == 0, f"another client saw the key inside atomic() {seen} times out of {polls}"


# ---------------------------------------------------------------- log()

def test_log_goes_to_redis_log(c, server):
    run_ok(c, """
        def f(x):
            log('hello-from-gears-marker-1')
            log('warning-from-gears-marker-2', level='warning')
            return x
        GB('ShardsIDReader').map(f).run()
    """)
    assert pyexecute(c, "log('top-level-log-marker-3')") == "OK"
    wait_until(lambda: "hello-from-gears-marker-1" in server.log(), timeout=5, what="log line 1")
    wait_until(lambda: "warning-from-gears-marker-2" in server.log(), timeout=5, what="log line 2")
    wait_until(lambda: "top-level-log-marker-3" in server.log(), timeout=5, what="log line 3")


# ---------------------------------------------------------------- configGet / gearsConfigGet

def test_config_get(c):
    expected = str(c.execute_command("RG.CONFIGGET", "BatchSize")[0])
    out = run_json(c, """
        return [str(configGet('BatchSize')), str(configGet('batchsize')), str(configGet('MaxExecutions'))]
    """)
    assert out[0] == expected
    assert out[1] == expected
    assert out[2] == str(c.execute_command("RG.CONFIGGET", "MaxExecutions")[0])


def test_gears_config_get(c):
    out = run_json(c, """
        return [gearsConfigGet('nope', 'dflt'), gearsConfigGet('nope'), str(gearsConfigGet('BatchSize', 'x'))]
    """)
    assert out[0] == "dflt"
    assert out[1] is None
    assert out[2] == str(c.execute_command("RG.CONFIGGET", "BatchSize")[0])


def test_gears_config_get_sees_extra_config(c):
    c.execute_command("RG.CONFIGSET", "RuntimeTestExtra", "xyz")
    out = run_json(c, "return [gearsConfigGet('RuntimeTestExtra'), gearsConfigGet('RuntimeTestExtra', 'd')]")
    assert out == ["xyz", "xyz"]


# ---------------------------------------------------------------- hashtag()

def test_hashtag(c):
    # As in RedisGears 1.2: the tag without braces, written '{%s}' % hashtag().
    out = run_json(c, """
        h = hashtag()
        execute('set', 'k{%s}' % h, 'v')
        return [type(h).__name__, h, execute('get', 'k{%s}' % h)]
    """)
    assert out[0] == "str"
    h = out[1]
    assert h and "{" not in h and "}" not in h, h
    assert out[2] == "v"
    assert c.get("k{%s}" % h) == "v"


# ---------------------------------------------------------------- isAsyncAllow()

def test_is_async_allow_in_async_run(c):
    assert run_json(c, "return isAsyncAllow()") is True


def test_is_async_allow_in_sync_run(c):
    # As in 1.2: a sync run its client can wait for may move to the background...
    assert run_json(c, "return isAsyncAllow()", mode="sync") is True
    # ...not one nested in another execution on the main thread (a sync run's execute()
    # fires it), which must end within the outer one
    pyexecute(c, "GB().foreach(lambda r: execute('set', 'nested:out', str(isAsyncAllow())))"
                 ".register(prefix='nested:in', mode='sync')")
    run_ok(c, "GB('ShardsIDReader').foreach(lambda x: execute('set', 'nested:in', '1'))"
              ".run(mode='sync')")
    assert c.get("nested:out") == "False"


# ---------------------------------------------------------------- async def steps and futures

def test_async_def_map(c):
    results = run_ok(c, """
        import asyncio
        async def am(x):
            await asyncio.sleep(0.01)
            return x * 2
        def gen():
            yield from range(20)
        GB('PythonReader').map(am).run(gen)
    """)
    assert sorted(int(x) for x in results) == [x * 2 for x in range(20)]


def test_async_def_steps_run_concurrently(c):
    """50 records each awaiting 0.2 s: concurrent coroutines finish far below 50 * 0.2 s."""
    t = time.monotonic()
    results = run_ok(c, """
        import asyncio
        async def am(x):
            await asyncio.sleep(0.2)
            return x
        def gen():
            yield from range(50)
        GB('PythonReader').map(am).run(gen)
    """)
    elapsed = time.monotonic() - t
    assert sorted(int(x) for x in results) == list(range(50))
    assert elapsed < 5, elapsed


def test_async_def_filter_and_flatmap(c):
    results = run_ok(c, """
        async def keep_even(x):
            return x % 2 == 0
        async def twice(x):
            return [x, x]
        def gen():
            yield from range(6)
        GB('PythonReader').filter(keep_even).flatmap(twice).run(gen)
    """)
    assert sorted(int(x) for x in results) == [0, 0, 2, 2, 4, 4]


def test_async_def_exception_is_error_entry(c):
    reply = pyexecute(c, textwrap.dedent("""
        async def am(x):
            if x == 1:
                raise ValueError('async bad')
            return x
        def gen():
            yield from range(3)
        GB('PythonReader').map(am).run(gen)
    """))
    assert sorted(reply[0]) == ["0", "2"]
    assert len(reply[1]) == 1 and "async bad" in reply[1][0]


def test_gears_future_resolved_from_thread(c):
    results = run_ok(c, """
        import threading, time
        def fm(x):
            f = gearsFuture()
            def later():
                time.sleep(0.05)
                f.continueRun(x + 100)
            threading.Thread(target=later).start()
            return f
        def gen():
            yield from range(5)
        GB('PythonReader').map(fm).map(lambda x: x + 1).run(gen)
    """)
    assert sorted(int(x) for x in results) == [101, 102, 103, 104, 105]


def test_gears_future_failed(c):
    reply = pyexecute(c, textwrap.dedent("""
        import threading
        def fm(x):
            f = gearsFuture()
            def later():
                if x == 1:
                    f.continueFailed('future failed here')
                else:
                    f.continueRun(x)
            threading.Thread(target=later).start()
            return f
        def gen():
            yield from range(3)
        GB('PythonReader').map(fm).run(gen)
    """))
    assert sorted(reply[0]) == ["0", "2"]
    assert len(reply[1]) == 1 and "future failed here" in reply[1][0]


def test_gears_future_in_sync_run_moves_it_to_the_background(c):
    """As in 1.2: the run goes on on a worker; a future nobody holds fails its record."""
    reply = pyexecute(c, "GB('ShardsIDReader').map(lambda x: gearsFuture()).run(mode='sync')")
    assert reply[0] == []
    assert reply[1] == ["GearsError: Async record did not called continue"], reply


def test_async_sessions_released(c):
    run_ok(c, """
        async def am(x):
            return x
        GB('ShardsIDReader').map(am).run()
    """)
    wait_until(lambda: c.execute_command("RG.PYDUMPSESSIONS") == [], timeout=5, what="no session")


# ---------------------------------------------------------------- C extension modules

CEXT_BODY = """
import json, json.decoder, hashlib, math, decimal, ctypes
import _json, _decimal, _ctypes
out = {}
out['c_scanstring'] = json.decoder.c_scanstring is not None
out['c_make_encoder'] = json.encoder.c_make_encoder is not None
out['json'] = json.loads('{"a": [1, 2.5, "x"]}')
out['sha256'] = hashlib.sha256(b'abc').hexdigest()
out['has_sha256'] = 'sha256' in hashlib.algorithms_available
out['md5'] = hashlib.md5(b'abc').hexdigest()
out['sqrt'] = math.sqrt(16.0)
out['gcd'] = math.gcd(12, 18)
out['decimal'] = str(decimal.Decimal(1) / decimal.Decimal(7))
out['decimal_is_c'] = decimal.Decimal is _decimal.Decimal
out['ctypes_int'] = ctypes.c_int(42).value
out['ctypes_sizeof'] = ctypes.sizeof(ctypes.c_int32)
out['ctypes_strlen'] = ctypes.CDLL(None).strlen(b'hello')
"""

CEXT_EXPECTED = {
    "c_scanstring": True,
    "c_make_encoder": True,
    "json": {"a": [1, 2.5, "x"]},
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "has_sha256": True,
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sqrt": 4.0,
    "gcd": 6,
    "decimal": "0.1428571428571428571428571429",
    "decimal_is_c": True,
    "ctypes_int": 42,
    "ctypes_sizeof": 4,
    "ctypes_strlen": 5,
}


def test_c_extensions_in_step(c):
    out = run_json(c, CEXT_BODY + "return out\n")
    assert out == CEXT_EXPECTED


def test_c_extensions_in_sync_step(c):
    out = run_json(c, CEXT_BODY + "return out\n", mode="sync")
    assert out == CEXT_EXPECTED


def test_c_extensions_at_top_level(c):
    code = CEXT_BODY + "execute('set', 'cext', json.dumps(out))\n"
    assert pyexecute(c, code) == "OK"
    assert json.loads(c.get("cext")) == CEXT_EXPECTED


def test_threads_inside_a_step(c):
    """Plain Python threads started by a step can run and be joined."""
    out = run_json(c, """
        import threading
        acc = []
        ts = [threading.Thread(target=lambda i=i: acc.append(i * i)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(5)
        return sorted(acc)
    """)
    assert out == [i * i for i in range(8)]


def test_sessions_have_separate_globals(c):
    assert pyexecute(c, "shared_name_xyz = 1") == "OK"
    with pytest.raises(ResponseError, match="NameError"):
        pyexecute(c, "shared_name_xyz + 1")
