"""The three recipes of RECIPES.md as Rust guests give the same results as the Python
recipes on the same data (compared as parsed multisets, not reply text)."""
import os
import sys
from collections import Counter

from conftest import (ROOT, pyexecute, python_groupby_counts, recipe, run_ok, upload,
                      wait_until, wasm_groupby_counts, wasmrun_ok)

sys.path.insert(0, os.path.join(ROOT, "recipes", "python"))
import load_movies  # noqa: E402


def python_genres(c):
    return python_groupby_counts(run_ok(c, recipe("count_genres.py")))


def test_recipe2_genres_equal_python(r):
    expected = load_movies.load(r, 3000, seed=7)
    r.set("other", "x")  # not a movie
    r.hset("movie:nogenre", "title", "none")  # a movie without genres
    upload(r, "genres")
    wasm = wasm_groupby_counts(wasmrun_ok(r, "genres", "count", "movie:*"))
    py = python_genres(r)
    assert wasm == py
    assert wasm == Counter(expected)


def test_recipe2_default_pattern(r):
    load_movies.load(r, 200, seed=1)
    upload(r, "genres")
    assert wasm_groupby_counts(wasmrun_ok(r, "genres", "count")) == python_genres(r)


def test_recipe1_all_keys_equal_python(r):
    upload(r, "all_keys")
    for i in range(200):
        r.set(f"k:{i}", i)
    r.hset("h", "f", "v")
    r.lpush("l", 1)
    r.sadd("all_keys", "not-a-key-but-set-directly")
    expected = {f"k:{i}" for i in range(200)} | {"h", "l", "not-a-key-but-set-directly"}
    wait_until(lambda: r.smembers("all_keys") == expected, what="all_keys from the guest")
    wasm = r.smembers("all_keys")

    r.execute_command("RG.WASMDELETE", "all_keys")
    r.flushall()
    assert pyexecute(r, recipe("all_keys.py")) == "OK"
    for i in range(200):
        r.set(f"k:{i}", i)
    r.hset("h", "f", "v")
    r.lpush("l", 1)
    r.sadd("all_keys", "not-a-key-but-set-directly")
    wait_until(lambda: r.smembers("all_keys") == expected, what="all_keys from Python")
    assert r.smembers("all_keys") == wasm


def apply_stream(c):
    for i in range(50):
        c.xadd("inputStream", {f"K{i}": f"V{i}", f"J{i}": f"W{i}"})
    want = {**{f"K{i}": f"V{i}" for i in range(50)}, **{f"J{i}": f"W{i}" for i in range(50)}}
    wait_until(lambda: all(c.get(k) == v for k, v in want.items()), what="stream applied")
    wait_until(lambda: c.xlen("inputStream") == 0, what="stream trimmed")
    return {k: c.get(k) for k in want}


def test_recipe3_stream_equal_python(r):
    r.xadd("inputStream", {"early": "before-upload"})
    upload(r, "stream_to_keys")
    wasm = apply_stream(r)
    assert r.get("early") == "before-upload"
    r.execute_command("RG.WASMDELETE", "stream_to_keys")
    r.flushall()
    r.xadd("inputStream", {"early": "before-upload"})
    assert pyexecute(r, recipe("stream_to_keys.py")) == "OK"
    assert apply_stream(r) == wasm
    assert r.get("early") == "before-upload"
