"""execute('hget', ...) from a recipe: the reply, errors and side effects a client sees
are those of HGET itself, whichever way the module reads the hash (the key API or a
command call).
"""
import json
import textwrap

import pytest

from conftest import pyexecute

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def read_all(c, calls, mode="async"):
    """Runs execute(*args) for each args of `calls` in one Python step; returns, per call,
    ['ok', reply] or ['err', text]."""
    code = textwrap.dedent(f"""
        import json
        def f(x):
            out = []
            for args in {calls!r}:
                try:
                    v = execute(*args)
                    out.append(['ok', v.hex() if isinstance(v, bytes) else v])
                except Exception as e:
                    out.append(['err', str(e)])
            return json.dumps(out)
        GB('ShardsIDReader').map(f).run(mode='{mode}')
    """)
    results, errors = pyexecute(c, code)
    assert errors == [], errors
    return json.loads(results[0])


def stat(c, name):
    return int(c.info("stats")[name])


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_hget_replies_as_hget_does(r, mode):
    r.hset("h", mapping={"f": "v", "n": 42, "empty": ""})
    r.set("s", "x")
    out = read_all(r, [
        ("hget", "h", "f"),
        ("HGET", "h", "n"),
        ("HgEt", "h", "empty"),
        ("hget", "h", "nofield"),
        ("hget", "nokey", "f"),
        ("hget", "s", "f"),
        ("hget", "h"),
        ("hget", "h", "f", "extra"),
    ], mode)
    assert out[:5] == [["ok", "v"], ["ok", "42"], ["ok", ""], ["ok", None], ["ok", None]]
    assert out[5] == ["err", WRONGTYPE]
    assert out[6] == out[7] == ["err", "ERR wrong number of arguments for 'hget' command"]


def test_hget_binary_and_large_values(r):
    r.hset(b"bin\x00key", b"fi\x00eld", b"\xff\x00\xfe")
    big = "x" * 100000
    r.hset("big", mapping={"f": big, **{f"k{i}": i for i in range(300)}})
    out = read_all(r, [
        (b"hget", b"bin\x00key", b"fi\x00eld"),
        ("hget", "big", "f"),
        ("hget", "big", "k299"),
    ])
    assert out[0] == ["ok", "ff00fe"]
    assert out[1] == ["ok", big]
    assert out[2] == ["ok", "299"]


def test_hget_counts_hits_and_misses_like_hget(r):
    r.hset("h", "f", "v")
    hits, misses = stat(r, "keyspace_hits"), stat(r, "keyspace_misses")
    read_all(r, [("hget", "h", "f"), ("hget", "h", "nofield"), ("hget", "nokey", "f")])
    # A missing field of an existing key is a hit, as for HGET.
    assert stat(r, "keyspace_hits") - hits == 2
    assert stat(r, "keyspace_misses") - misses == 1


def test_hget_of_a_missing_key_raises_keymiss(r):
    reg = pyexecute(r, textwrap.dedent("""
        GB('KeysReader').foreach(lambda x: execute('rpush', 'kmlog', x['key'])) \\
            .register(prefix='gone:*', eventTypes=['keymiss'], mode='sync')
    """))
    assert reg == "OK"
    read_all(r, [("hget", "gone:1", "f")], mode="sync")
    assert r.lrange("kmlog", 0, -1) == ["gone:1"]


def test_hget_of_an_expired_key_is_nil_and_deletes_it(r):
    # Counted from before the key exists: Redis's active expiry (10 times a second) may
    # get to the key before the read does; either way it expires exactly once.
    expired = stat(r, "expired_keys")
    r.hset("exp", "f", "v")
    r.pexpire("exp", 1)
    import time
    time.sleep(0.02)
    assert read_all(r, [("hget", "exp", "f")]) == [["ok", None]]
    assert stat(r, "expired_keys") - expired == 1
    assert r.exists("exp") == 0
