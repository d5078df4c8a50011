"""Black-box tests of the batch readers (run()) as a Python recipe sees them.

Every reader of SPEC.md "Readers" that supports run(), with every run() argument, checking
the exact record shapes users see. Results are str() of the records (convertToStr=True), so
they are parsed back with ast.literal_eval (no eval of anything the module sends) or pulled
field by field with map() steps inside the recipe.
"""
import ast
from collections import Counter

import pytest
import redis

from conftest import run_ok

ZERO_ID = "0" * 40


def parsed(results):
    return [ast.literal_eval(x) for x in results]


def by_key(records):
    out = {}
    for rec in records:
        assert rec["key"] not in out, f"key {rec['key']!r} read twice"
        out[rec["key"]] = rec
    return out


def make_all_types(r):
    r.set("str", "hello")
    r.hset("hash", mapping={"f1": "v1", "f2": "v2"})
    r.rpush("list", "c", "a", "b")
    r.sadd("set", "m1", "m2")
    r.zadd("zset", {"z1": 1, "z2": 2})
    r.xadd("stream", {"sf": "sv"}, id="1-1")


EXPECTED_ALL_TYPES = {
    "str": {"key": "str", "value": "hello", "type": "string", "event": None},
    "hash": {"key": "hash", "value": {"f1": "v1", "f2": "v2"}, "type": "hash", "event": None},
    "list": {"key": "list", "value": ["c", "a", "b"], "type": "list", "event": None},
    "set": {"key": "set", "value": None, "type": "set", "event": None},
    "zset": {"key": "zset", "value": None, "type": "zset", "event": None},
    "stream": {"key": "stream", "value": None, "type": "stream", "event": None},
}


# ---------------------------------------------------------------------------------------
# KeysReader
# ---------------------------------------------------------------------------------------


def test_keysreader_record_shape_every_type(r):
    make_all_types(r)
    results = run_ok(r, "GB('KeysReader').run('*')")
    assert len(results) == len(EXPECTED_ALL_TYPES), results
    assert by_key(parsed(results)) == EXPECTED_ALL_TYPES


def test_keysreader_fields_pulled_inside_python(r):
    """The record is a dict with exactly key/value/type/event, and the value has the
    Python type of SPEC.md (str, dict, list, None)."""
    make_all_types(r)
    code = (
        "GB('KeysReader')"
        ".map(lambda r: '|'.join([type(r).__name__, ','.join(sorted(r.keys())), r['key'], "
        "r['type'], type(r['value']).__name__, str(r['event'])]))"
        ".run('*')"
    )
    results = run_ok(r, code)
    assert sorted(results) == sorted(
        [
            "dict|event,key,type,value|str|string|str|None",
            "dict|event,key,type,value|hash|hash|dict|None",
            "dict|event,key,type,value|list|list|list|None",
            "dict|event,key,type,value|set|set|NoneType|None",
            "dict|event,key,type,value|zset|zset|NoneType|None",
            "dict|event,key,type,value|stream|stream|NoneType|None",
        ]
    )


def test_keysreader_list_value_keeps_order(r):
    r.rpush("l", *[str(i) for i in range(50)])
    results = run_ok(r, "GB('KeysReader').map(lambda r: ','.join(r['value'])).run('l')")
    assert results == [",".join(str(i) for i in range(50))]


def test_keysreader_default_pattern_is_star(r):
    for i in range(20):
        r.set(f"k{i}", i)
    r.hset("h", "a", "b")
    results = run_ok(r, "GB().map(lambda r: r['key']).run()")
    assert Counter(results) == Counter([f"k{i}" for i in range(20)] + ["h"])


def test_gearsbuilder_is_gb_and_reader_default_is_keysreader(r):
    r.set("a", "1")
    r1 = run_ok(r, "GearsBuilder().run()")
    r2 = run_ok(r, "GB('KeysReader').run()")
    r3 = run_ok(r, "GearsBuilder('KeysReader').run('*')")
    assert parsed(r1) == parsed(r2) == parsed(r3) == [
        {"key": "a", "value": "1", "type": "string", "event": None}
    ]
    assert run_ok(r, "GB().map(lambda x: str(GB is GearsBuilder)).run()") == ["True"]


def test_keysreader_default_arg_of_builder(r):
    r.set("x1", "1")
    r.set("x2", "2")
    r.set("y1", "3")
    results = run_ok(r, "GB('KeysReader', defaultArg='x*').map(lambda r: r['key']).run()")
    assert sorted(results) == ["x1", "x2"]
    # an explicit pattern wins over defaultArg
    results = run_ok(r, "GB('KeysReader', 'x*').map(lambda r: r['key']).run('y*')")
    assert results == ["y1"]


def test_keysreader_desc_is_accepted(r):
    r.set("a", "1")
    results = run_ok(r, "GB('KeysReader', desc='my description').map(lambda r: r['key']).run()")
    assert results == ["a"]


def test_keysreader_pattern_prefix_and_glob(r):
    with r.pipeline(transaction=False) as p:
        for i in range(30):
            p.set(f"user:{i}", i)
            p.set(f"item:{i}", i)
        p.set("user", "bare")
        p.execute()
    results = run_ok(r, "GB().map(lambda r: r['key']).run('user:*')")
    assert Counter(results) == Counter(f"user:{i}" for i in range(30))
    results = run_ok(r, "GB().map(lambda r: r['key']).run('item:?')")
    assert Counter(results) == Counter(f"item:{i}" for i in range(10))
    # a pattern without wildcard is matched as one exact name (through SCAN)
    results = run_ok(r, "GB().map(lambda r: r['key']).run('user')")
    assert results == ["user"]
    # nothing matches -> no record, no error
    assert run_ok(r, "GB().run('nomatch*')") == []


def test_keysreader_scans_many_keys_exactly_once(r):
    n = 5000
    with r.pipeline(transaction=False) as p:
        for i in range(n):
            p.set(f"many:{i}", i)
        p.execute()
    r.set("other", "x")
    results = run_ok(r, "GB().map(lambda r: r['key']).run('many:*')")
    assert len(results) == n
    assert set(results) == {f"many:{i}" for i in range(n)}
    values = run_ok(r, "GB().map(lambda r: int(r['value'])).accumulate(lambda a, x: (a or 0) + x).run('many:*')")
    assert values == [str(sum(range(n)))]


def test_keysreader_noscan_reads_one_key_by_name(r):
    r.set("a*", "star")
    r.set("ab", "b")
    r.set("abc", "c")
    results = run_ok(r, "GB().run('a*', noScan=True)")
    assert parsed(results) == [{"key": "a*", "value": "star", "type": "string", "event": None}]
    results = run_ok(r, "GB().run('ab', noScan=True)")
    assert parsed(results) == [{"key": "ab", "value": "b", "type": "string", "event": None}]
    # noScan=False with the same pattern scans: the glob matches all three keys
    results = run_ok(r, "GB().map(lambda r: r['key']).run('a*', noScan=False)")
    assert sorted(results) == ["a*", "ab", "abc"]


def test_keysreader_noscan_hash(r):
    r.hset("h", mapping={"a": "1", "b": "2"})
    results = run_ok(r, "GB().run('h', noScan=True)")
    assert parsed(results) == [{"key": "h", "value": {"a": "1", "b": "2"}, "type": "hash", "event": None}]


def test_keysreader_noscan_missing_key_gives_an_empty_record(r):
    # as RedisGears 1.2: the one key asked for, missing, is a record of type 'empty'
    r.set("present", "1")
    assert parsed(run_ok(r, "GB().run('missing', noScan=True)")) == [
        {"key": "missing", "value": None, "type": "empty", "event": None}]


def test_keysreader_readvalue_false(r):
    make_all_types(r)
    results = run_ok(r, "GB().run('*', readValue=False)")
    assert len(results) == len(EXPECTED_ALL_TYPES)
    assert by_key(parsed(results)) == {k: {"key": k, "event": None} for k in EXPECTED_ALL_TYPES}
    # no value/type keys at all
    results = run_ok(
        r, "GB().map(lambda r: ','.join(sorted(r.keys()))).run('*', readValue=False)"
    )
    assert results == ["event,key"] * len(EXPECTED_ALL_TYPES)


def test_keysreader_readvalue_false_with_noscan(r):
    r.set("k", "v")
    results = run_ok(r, "GB().run('k', noScan=True, readValue=False)")
    assert parsed(results) == [{"key": "k", "event": None}]


def test_keysreader_readvalue_true_explicit(r):
    r.set("k", "v")
    results = run_ok(r, "GB().run('k', readValue=True)")
    assert parsed(results) == [{"key": "k", "value": "v", "type": "string", "event": None}]


@pytest.mark.parametrize("mode", ["sync", "async_local", "async"])
def test_keysreader_modes_same_results(r, mode):
    make_all_types(r)
    with r.pipeline(transaction=False) as p:
        for i in range(700):
            p.set(f"m:{i}", i)
        p.execute()
    base = run_ok(r, "GB().run('*')")
    results = run_ok(r, f"GB().run('*', mode='{mode}')")
    assert Counter(results) == Counter(base)
    assert len(results) == len(EXPECTED_ALL_TYPES) + 700
    got = by_key(parsed(results))
    for k, v in EXPECTED_ALL_TYPES.items():
        assert got[k] == v


@pytest.mark.parametrize("mode", ["sync", "async_local"])
def test_keysreader_modes_with_steps(r, mode):
    for i in range(100):
        r.set(f"n:{i}", i)
    code = (
        "GB().map(lambda r: int(r['value'])).filter(lambda x: x % 2 == 0)"
        f".countby(lambda x: x % 3).run('n:*', mode='{mode}')"
    )
    base = Counter(run_ok(r, code.replace(f", mode='{mode}'", "")))
    assert Counter(run_ok(r, code)) == base
    expected = Counter(str(x % 3) for x in range(0, 100, 2))   # str keys, as 1.2
    assert {d["key"]: d["value"] for d in parsed(base)} == dict(expected)


# ---------------------------------------------------------------------------------------
# KeysOnlyReader
# ---------------------------------------------------------------------------------------


def test_keysonlyreader_records_are_key_names(r):
    make_all_types(r)
    results = run_ok(r, "GB('KeysOnlyReader').run()")
    assert sorted(results) == sorted(EXPECTED_ALL_TYPES)
    types = run_ok(r, "GB('KeysOnlyReader').map(lambda k: type(k).__name__).run()")
    assert types == ["str"] * len(EXPECTED_ALL_TYPES)


def test_keysonlyreader_pattern(r):
    for i in range(10):
        r.set(f"a:{i}", i)
        r.set(f"b:{i}", i)
    assert sorted(run_ok(r, "GB('KeysOnlyReader').run('a:*')")) == sorted(f"a:{i}" for i in range(10))


# Keys whose names exercise every rule of Redis's glob patterns.
GLOB_KEYS = ["movie:1", "movie:", "movies", "a*b", "axb", "a\\b", "h]llo", "hallo", "hello",
             "h-llo", "h^llo", "k[ab", "kb", "x", "", "[", "]", "?", "a-z", "^", "\\", "ab\\"]
GLOB_PATTERNS = ["*", "movie:*", "*:*", "a\\*b", "a?b", "h[ae]llo", "h[^e]llo", "h[a-e]llo",
                 "h[e-a]llo", "h[\\]]llo", "h[a\\-z]llo", "[a-]", "k[ab", "k[]", "?", "\\?",
                 "*\\", "[\\\\]", "[", "]", "**", "a*", "*b", "h*o", "[^a-z]*", "*[", "\\"]


def test_keysonlyreader_matches_as_scan_match_does(r):
    for k in GLOB_KEYS:
        r.set(k, "v")
    r.set(b"bin:\xff\x00", "v")
    raw = redis.Redis(port=r.connection_pool.connection_kwargs["port"])
    for pattern in GLOB_PATTERNS + ["bin:*", "bin:?\x00"]:
        expected = sorted(k.decode("utf-8", "replace")
                          for k in raw.scan_iter(match=pattern, count=3))
        got = sorted(run_ok(r, f"GB('KeysOnlyReader').run({pattern!r})"))
        assert got == expected, pattern


def test_keysreader_leaves_out_keys_whose_time_is_over(fresh_server):
    # Active expiry off: the expired keys stay in the keyspace, as SCAN sees them.
    s = fresh_server(extra_args=["--enable-debug-command", "yes"])
    r = s.client()
    r.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0")
    for i in range(20):
        r.set(f"live:{i}", "v")
        r.set(f"gone:{i}", "v", px=1)
    r.set("later", "v", ex=1000)
    import time
    time.sleep(0.05)
    assert r.execute_command("DBSIZE") == 41  # not deleted yet
    names = sorted(run_ok(r, "GB('KeysOnlyReader').run()"))
    assert names == sorted([f"live:{i}" for i in range(20)] + ["later"])
    records = run_ok(r, "GB().map(lambda x: x['key']).run()")
    assert sorted(records) == names
    assert sorted(k for k in r.scan_iter()) == names


@pytest.mark.parametrize("count", [1, 7, 1000, 100000])
def test_keysonlyreader_count_does_not_change_results(r, count):
    n = 1500
    with r.pipeline(transaction=False) as p:
        for i in range(n):
            p.set(f"c:{i}", i)
        p.execute()
    r.set("zzz", "1")
    results = run_ok(r, f"GB('KeysOnlyReader').run('c:*', count={count})")
    assert len(results) == n
    assert set(results) == {f"c:{i}" for i in range(n)}


def test_keysonlyreader_noscan(r):
    r.set("a*", "1")
    r.set("ab", "2")
    assert run_ok(r, "GB('KeysOnlyReader').run('a*', noScan=True)") == ["a*"]
    assert sorted(run_ok(r, "GB('KeysOnlyReader').run('a*', noScan=False)")) == ["a*", "ab"]


def test_keysonlyreader_pattern_generator(r):
    for i in range(5):
        r.set(f"a:{i}", i)
        r.set(f"b:{i}", i)
    # the generator is called at run time and its pattern is scanned (default pattern '*'
    # would give every key)
    code = "GB('KeysOnlyReader').run(patternGenerator=lambda: 'b:*')"
    assert sorted(run_ok(r, code)) == sorted(f"b:{i}" for i in range(5))


def test_keysonlyreader_pattern_generator_runs_on_shard(r):
    """The generator may call execute(): it runs on the shard at run time."""
    r.set("which", "a:*")
    for i in range(3):
        r.set(f"a:{i}", i)
        r.set(f"b:{i}", i)
    code = (
        "def gen():\n"
        "    return execute('get', 'which')\n"
        "GB('KeysOnlyReader').run(patternGenerator=gen)\n"
    )
    assert sorted(run_ok(r, code)) == ["a:0", "a:1", "a:2"]
    r.set("which", "b:*")
    assert sorted(run_ok(r, code)) == ["b:0", "b:1", "b:2"]


@pytest.mark.parametrize("mode", ["sync", "async_local"])
def test_keysonlyreader_modes(r, mode):
    for i in range(600):
        r.set(f"k:{i}", i)
    base = run_ok(r, "GB('KeysOnlyReader').run('k:*')")
    results = run_ok(r, f"GB('KeysOnlyReader').run('k:*', mode='{mode}')")
    assert Counter(results) == Counter(base)
    assert len(results) == 600


# ---------------------------------------------------------------------------------------
# StreamReader
# ---------------------------------------------------------------------------------------


def fill_stream(r):
    r.xadd("s", {"f": "v1"}, id="1-1")
    r.xadd("s", {"f": "v2", "g": "w2"}, id="1-2")
    r.xadd("s", {"f": "v3"}, id="2-0")
    r.xadd("other", {"x": "y"}, id="1-0")


def test_streamreader_record_shape(r):
    fill_stream(r)
    results = run_ok(r, "GB('StreamReader').run('s')")
    assert sorted(parsed(results), key=lambda d: d["id"]) == [
        {"key": "s", "id": "1-1", "value": {"f": "v1"}},
        {"key": "s", "id": "1-2", "value": {"f": "v2", "g": "w2"}},
        {"key": "s", "id": "2-0", "value": {"f": "v3"}},
    ]
    fields = run_ok(
        r,
        "GB('StreamReader').map(lambda r: '|'.join([type(r).__name__, ','.join(sorted(r.keys())), "
        "type(r['id']).__name__, type(r['value']).__name__])).run('s')",
    )
    assert fields == ["dict|id,key,value|str|dict"] * 3


def test_streamreader_fromid_default_and_explicit_zero(r):
    fill_stream(r)
    a = run_ok(r, "GB('StreamReader').map(lambda r: r['id']).run('s')")
    b = run_ok(r, "GB('StreamReader').map(lambda r: r['id']).run('s', fromId='0-0')")
    assert sorted(a) == sorted(b) == ["1-1", "1-2", "2-0"]


def test_streamreader_fromid_is_exclusive(r):
    fill_stream(r)
    ids = lambda from_id: sorted(  # noqa: E731
        run_ok(r, f"GB('StreamReader').map(lambda r: r['id']).run('s', fromId='{from_id}')")
    )
    assert ids("1-1") == ["1-2", "2-0"]
    assert ids("1-2") == ["2-0"]
    assert ids("1-5") == ["2-0"]
    assert ids("2-0") == []
    assert ids("9-0") == []


def test_streamreader_many_messages(r):
    n = 2000
    with r.pipeline(transaction=False) as p:
        for i in range(1, n + 1):
            p.xadd("big", {"i": str(i)}, id=f"{i}-0")
        p.execute()
    results = run_ok(r, "GB('StreamReader').map(lambda r: r['value']['i']).run('big')")
    assert len(results) == n
    assert set(results) == {str(i) for i in range(1, n + 1)}
    results = run_ok(r, "GB('StreamReader').count().run('big', fromId='1000-0')")
    assert results == [str(n - 1000)]


def test_streamreader_does_not_consume_or_trim(r):
    fill_stream(r)
    run_ok(r, "GB('StreamReader').run('s')")
    assert r.xlen("s") == 3
    assert len(run_ok(r, "GB('StreamReader').run('s')")) == 3


@pytest.mark.parametrize("mode", ["sync", "async_local"])
def test_streamreader_modes(r, mode):
    fill_stream(r)
    base = run_ok(r, "GB('StreamReader').run('s', fromId='1-1')")
    results = run_ok(r, f"GB('StreamReader').run('s', fromId='1-1', mode='{mode}')")
    assert Counter(results) == Counter(base)
    assert len(results) == 2


# ---------------------------------------------------------------------------------------
# ShardsIDReader
# ---------------------------------------------------------------------------------------


def test_shardsidreader_standalone(r):
    # as RedisGears 1.2 without a cluster
    assert run_ok(r, "GB('ShardsIDReader').run()") == ["1"]
    assert run_ok(r, "GB('ShardsIDReader').map(lambda x: type(x).__name__).run()") == ["str"]


@pytest.mark.parametrize("mode", ["sync", "async_local"])
def test_shardsidreader_modes(r, mode):
    assert run_ok(r, f"GB('ShardsIDReader').run(mode='{mode}')") == ["1"]


# ---------------------------------------------------------------------------------------
# PythonReader
# ---------------------------------------------------------------------------------------


def test_pythonreader_generator(r):
    code = (
        "def gen():\n"
        "    for i in range(10):\n"
        "        yield i\n"
        "GB('PythonReader').run(gen)\n"
    )
    assert Counter(run_ok(r, code)) == Counter(str(i) for i in range(10))


def test_pythonreader_records_are_python_objects(r):
    code = (
        "def gen():\n"
        "    yield 1\n"
        "    yield 'two'\n"
        "    yield {'a': [1, 2]}\n"
        "    yield [3, 'x']\n"
        "    yield 2.5\n"
        "    yield None\n"
        "GB('PythonReader').map(lambda x: type(x).__name__ + ':' + repr(x)).run(gen)\n"
    )
    assert Counter(run_ok(r, code)) == Counter(
        ["int:1", "str:'two'", "dict:{'a': [1, 2]}", "list:[3, 'x']", "float:2.5", "NoneType:None"]
    )


def test_pythonreader_many_records_and_execute(r):
    code = (
        "def gen():\n"
        "    n = int(execute('get', 'n'))\n"
        "    for i in range(n):\n"
        "        yield i\n"
        "GB('PythonReader').accumulate(lambda a, x: (a or 0) + x).run(gen)\n"
    )
    r.set("n", 5000)
    assert run_ok(r, code) == [str(sum(range(5000)))]
    code2 = code.replace(".accumulate(lambda a, x: (a or 0) + x)", ".count()")
    assert run_ok(r, code2) == ["5000"]


def test_pythonreader_empty_generator(r):
    code = "def gen():\n    return\n    yield 1\nGB('PythonReader').run(gen)\n"
    assert run_ok(r, code) == []


def test_pythonreader_generator_is_called_at_run_time(r):
    """gen_fn() is called per run: a second run gets fresh items."""
    code = (
        "def gen():\n"
        "    yield execute('incr', 'calls')\n"
        "GB('PythonReader').run(gen)\n"
    )
    assert run_ok(r, code) == ["1"]
    assert run_ok(r, code) == ["2"]


@pytest.mark.parametrize("mode", ["sync", "async_local", "async"])
def test_pythonreader_modes(r, mode):
    code = (
        "def gen():\n"
        "    for i in range(1200):\n"
        "        yield {'i': i, 'g': i % 4}\n"
        f"GB('PythonReader').map(lambda x: x['i']).run(gen, mode='{mode}')\n"
    )
    results = run_ok(r, code)
    assert Counter(results) == Counter(str(i) for i in range(1200))
