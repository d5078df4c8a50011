"""A guest can do what a Python recipe can: every reader, every operation, execute(),
atomic blocks, log and config, registrations on every kind of event, with the same
results as the same plan in Python (compared as parsed values). The guest is
tests/guests/kitchen."""
import ast
from collections import Counter

import pytest
import redis

from conftest import (upload, wasmrun, wasmrun_ok, run_ok, pyexecute, wait_until, pairs,
                      dump_regs)

ZERO = "0" * 40


@pytest.fixture
def k(r):
    upload(r, "kitchen")
    return r


def data(r):
    r.set("a:1", "x")
    r.set("a:22", "yy")
    r.set("src:one", "1")
    r.hset("h:1", mapping={"f": "v", "g": "w"})
    r.rpush("l:1", "a", "b")
    r.sadd("s:1", "m")


def py(r, plan):
    """Python results of `GB(...)...run(..., convertToStr=False)` parsed like the guest's."""
    return run_ok(r, plan)


def kv(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def test_keys_reader_records(k):
    data(k)
    got = {kv(x)["key"]: kv(x) for x in wasmrun_ok(k, "kitchen", "keys")}
    assert set(got) == {"a:1", "a:22", "src:one", "h:1", "l:1", "s:1"}
    assert got["a:1"]["value"] == "x" and got["a:1"]["type"] == "string"
    assert got["a:1"]["event"] is None
    assert kv(got["h:1"]["value"]) == {"f": "v", "g": "w"}
    assert got["l:1"]["value"] == ["a", "b"] and got["s:1"]["value"] is None
    assert got["s:1"]["type"] == "set"
    novalue = [kv(x) for x in wasmrun_ok(k, "kitchen", "keys_novalue", "a:*")]
    assert sorted(x["key"] for x in novalue) == ["a:1", "a:22"]
    assert all(set(x) == {"key", "event"} for x in novalue)


def test_keys_only_and_pattern(k):
    data(k)
    assert sorted(wasmrun_ok(k, "kitchen", "keys_only")) == sorted(k.keys())
    assert sorted(wasmrun_ok(k, "kitchen", "keys_only", "a:*")) == ["a:1", "a:22"]


def test_stream_and_shards_and_generator(k):
    ids = [k.xadd("st", {"f": str(i)}) for i in range(3)]
    recs = [kv(x) for x in wasmrun_ok(k, "kitchen", "stream", "st")]
    assert [x["id"] for x in recs] == ids
    assert [kv(x["value"]) for x in recs] == [{"f": "0"}, {"f": "1"}, {"f": "2"}]
    assert all(x["key"] == "st" for x in recs)
    assert wasmrun_ok(k, "kitchen", "shards") == ["1"]  # as 1.2 without a cluster
    assert wasmrun_ok(k, "kitchen", "gen", "p", "q") == ["p", "q", 2]
    assert wasmrun_ok(k, "kitchen", "gen") == [0]


def test_operations_equal_python(k):
    # The guest's timer writes wasm_ticks every 100 ms: without it, the keyspace holds
    # still between the listing below and the runs compared with it.
    timers = [pairs(e)["id"] for e in k.execute_command("RG.DUMPREGISTRATIONS")
              if pairs(e)["reader"] == "TimeReader"]
    assert timers and all(k.execute_command("RG.UNREGISTER", t) == "OK" for t in timers)
    wait_until(lambda: all(pairs(e)["status"] in ("done", "aborted")
                           for e in k.execute_command("RG.DUMPEXECUTIONS")),
               what="the last tick to end")
    k.delete("wasm_ticks")
    data(k)
    for i in range(30):
        k.set(f"n:{i}", i)
    keys = k.keys()

    assert wasmrun_ok(k, "kitchen", "count") == [len(keys)]
    assert py(k, "GB('KeysOnlyReader').count().run(convertToStr=False)") == [len(keys)]

    wasm = Counter({kv(x)["key"]: kv(x)["value"]
                    for x in wasmrun_ok(k, "kitchen", "countby_type")})
    p = Counter({d["key"]: d["value"] for d in map(ast.literal_eval, py(
        k, "GB().countby(lambda r: r['type']).run()"))})
    assert wasm == p

    assert sorted(wasmrun_ok(k, "kitchen", "distinct_types")) == sorted(
        py(k, "GB().map(lambda r: r['type']).distinct().run()"))
    assert wasmrun_ok(k, "kitchen", "sort_keys") == sorted(keys)
    assert wasmrun_ok(k, "kitchen", "sort_keys_desc") == sorted(keys, reverse=True)
    assert wasmrun_ok(k, "kitchen", "limit") == sorted(keys)[1:3]
    avg = float(wasmrun_ok(k, "kitchen", "avg_len")[0])
    assert avg == pytest.approx(sum(map(len, keys)) / len(keys))
    total = sum(map(len, keys))
    assert wasmrun_ok(k, "kitchen", "accumulate_len") == [total]
    assert wasmrun_ok(k, "kitchen", "aggregate_len") == [total]

    # steps that read records in place (View) answer as typed steps and Python do
    assert wasmrun_ok(k, "kitchen", "len_count") == [len(keys)]
    hashes = [x for x in keys if k.type(x) == "hash"]
    assert hashes
    got = sorted((x[0], int(x[1])) for x in wasmrun_ok(k, "kitchen", "views"))
    assert got == sorted((h, k.hlen(h)) for h in hashes)
    assert k.smembers("views:seen") == set(hashes)
    k.delete("views:seen")

    types = Counter(k.type(x) for x in keys)
    for job in ("aggregateby_type", "groupby_type", "localgroupby_type", "batchgroupby_type"):
        got = Counter({kv(x)["key"]: kv(x)["value"] for x in wasmrun_ok(k, "kitchen", job)})
        assert got == types, job
    assert sorted(wasmrun_ok(k, "kitchen", "repartition")) == sorted(x.upper() for x in keys)
    assert Counter(wasmrun_ok(k, "kitchen", "flatmap_split")) == Counter(
        p for x in keys for p in x.split(":"))
    assert sorted(wasmrun_ok(k, "kitchen", "filter_prefix")) == sorted(
        x for x in keys if x.startswith("a"))


def test_execute_and_errors(k):
    data(k)
    assert wasmrun_ok(k, "kitchen", "foreach_copy") == ["src:one"]
    assert k.get("copy:one") == "1"
    k.set("bad:1", "x")
    results, errors = wasmrun(k, "kitchen", "fail_some")
    assert sorted(results) == sorted(x for x in k.keys() if "bad" not in x)
    assert errors == ["bad key bad:1"]
    results, errors = wasmrun(k, "kitchen", "wrongtype")
    not_hashes = [x for x in k.keys() if k.type(x) != "hash"]
    assert len(errors) == len(not_hashes) and all("WRONGTYPE" in e for e in errors), errors
    assert results == ["v"]  # the hash h:1 has field f


def test_values_reply_as_resp(k):
    raw = redis.Redis(port=k.connection_pool.connection_kwargs["port"])
    results, errors = raw.execute_command("RG.WASMRUN", "kitchen", "values")
    assert errors == []
    assert results == [None, 7, b"2.5", b"text", b"\xff\x00", [1, b"a"], [b"a", 1], 1]


def test_atomic_log_and_config(k, server):
    assert wasmrun_ok(k, "kitchen", "atomic") == [2]
    k.execute_command("RG.CONFIGSET", "kitchen.user", "hello")
    shard, tag, maxexec, user = wasmrun_ok(k, "kitchen", "env")[0]
    # hashtag(): as in RedisGears 1.2, the tag without braces.
    assert shard == ZERO and tag and "{" not in tag and maxexec == "1000" and user == "hello"
    k.set("one", 1)
    assert wasmrun_ok(k, "kitchen", "log") == ["logged"]
    wait_until(lambda: "kitchen says hi" in server.log(), what="the guest's log line")


def test_sandbox_has_no_files_environment_or_network(k, server):
    # the guest tries /, ., /etc/passwd, its environment, its arguments and a TCP
    # connection to this very server's port (and to 6379)
    assert wasmrun_ok(k, "kitchen", "sandbox") == [[0, 0, 0, 0]]


def test_job_modes_and_unblocking(k):
    data(k)
    eid = k.execute_command("RG.WASMRUN", "kitchen", "keys_only", "UNBLOCKING")
    assert eid.startswith(ZERO + "-")
    reply = k.execute_command("RG.GETRESULTSBLOCKING", eid)
    assert sorted(reply[0]) == sorted(k.keys())
    plan = pairs(pairs(k.execute_command("RG.GETEXECUTION", eid)[0])["execution_plan"])
    assert plan["status"] == "done"


def test_sync_trigger_side_by_side_with_python(k):
    assert pyexecute(k, "GB().foreach(lambda x: execute('sadd', 'py_seen', x['key']))"
                        ".register(prefix='wsync:*', mode='sync')") == "OK"
    for i in range(100):
        k.set(f"wsync:{i}", i)
    # sync: both ran inside each SET
    want = {f"wsync:{i}" for i in range(100)}
    assert k.smembers("wasm_seen") == want
    assert k.smembers("py_seen") == want
    regs = dump_regs(k)
    assert sorted(d["data"]["numTriggered"] for d in regs.values()
                  if d["args"].get("regex") == "wsync:*") == [100, 100]
    assert all(d["data"]["numFailures"] == 0 for d in regs.values())


def test_sync_guest_runs_of_one_registration_stay_apart(fresh_server):
    """A stateless guest registration's runs share one open guest run (kept between
    events): a failing event's error stays with its own execution, and the next event
    runs as new."""
    s = fresh_server()
    c = s.client()
    upload(c, "kitchen")
    (rid,) = [rid for rid, d in dump_regs(c).items() if d["args"].get("regex") == "wsync:*"]
    c.set("wasm_seen", "not a set")  # every SADD of the trigger now fails
    for i in range(3):
        c.set(f"wsync:bad{i}", i)
    c.delete("wasm_seen")
    for i in range(3):
        c.set(f"wsync:{i}", i)
    assert c.smembers("wasm_seen") == {f"wsync:{i}" for i in range(3)}
    data = dump_regs(c)[rid]["data"]
    assert (data["numSuccess"], data["numFailures"]) == (3, 3), data
    errors = [len(c.execute_command("RG.GETRESULTS", pairs(e)["executionId"])[1])
              for e in c.execute_command("RG.DUMPEXECUTIONS") if pairs(e)["registered"] == 1]
    # (the guest's timer registration may have run meanwhile too, without errors)
    assert errors.count(1) == 3 and errors.count(0) >= 3 and set(errors) <= {0, 1}, errors


def test_async_stream_trigger_command_hook_timer(k):
    for i in range(20):
        k.set(f"wasync:{i}", i)
    wait_until(lambda: k.scard("wasm_seen_async") == 20, what="async guest trigger")

    k.xadd("wstream", {"a": "1", "b": "2"})
    wait_until(lambda: k.get("ws:a") == "1" and k.get("ws:b") == "2", what="stream guest")

    assert k.execute_command("RG.TRIGGER", "wasm_echo", "x", "y") == [["y", "x", "wasm_echo"]]

    assert k.hset("whook:1", "f", "v") == 2  # the hook added field 'hooked'
    assert k.hgetall("whook:1") == {"f": "v", "hooked": "1"}
    assert k.hset("other", "f", "v") == 1  # not under the key prefix

    assert k.lpush("wcmd:1", "a") == "WASM-LPUSH"
    assert k.lrange("wcmd:1", 0, -1) == ["a"]

    assert k.get("wmiss:1") is None
    assert k.get("missed:wmiss:1") == "1"

    wait_until(lambda: int(k.get("wasm_ticks") or 0) >= 3, what="timer ticks")


def test_python_disabled_guests_still_work(fresh_server):
    s = fresh_server(module_args=["PythonEnabled", "0"])
    c = s.client()
    with pytest.raises(redis.ResponseError, match="Python is disabled"):
        pyexecute(c, "GB().run()")
    upload(c, "kitchen")
    upload(c, "genres")
    c.hset("movie:1", "genres", "Drama")
    assert wasmrun_ok(c, "genres", "count", "movie:*") == [["key", "Drama", "value", 1]]
    c.set("wsync:1", 1)
    assert c.smembers("wasm_seen") == {"wsync:1"}
