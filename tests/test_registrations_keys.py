"""Black-box tests of KeysReader registrations (GB().register()) as users see them.

SPEC.md "Readers" (KeysReader register()), "Commands" (RG.DUMPREGISTRATIONS, RG.UNREGISTER,
RG.CLEARREGISTRATIONSSTATS, RG.DUMPEXECUTIONS) and "Configuration" (MaxPendingEvents,
MaxExecutionsPerRegistration); RECIPES.md recipe 1.

Tests on the shared server use their own key prefixes, and every registration is removed
after each test (see `clean`), so no test sees another's triggers. Sync registrations are
checked right after the write returns (the execution runs inside the event); async ones
only by polling with a deadline (wait_until). "Did not fire" is checked in sync mode, or in
async mode through numTriggered, which counts at the event.
"""
import ast
import os
import re
import time

import pytest

from conftest import ROOT, pyexecute, wait_until, pairs, register_id

ZERO = "0" * 40
RECIPE1 = os.path.join(ROOT, "recipes", "python", "all_keys.py")

STAT_NAMES = [
    "mode", "numTriggered", "numSuccess", "numFailures", "numAborted", "lastRunDurationMS",
    "totalRunDurationMS", "avgRunDurationMS", "lastError", "numOverflows", "args",
]


# ---------------------------------------------------------------------------- helpers

def dump_regs(r):
    """RG.DUMPREGISTRATIONS as {id: {'desc':..., 'data': {...}, 'args': {...}, ...}}."""
    out = {}
    for entry in r.execute_command("RG.DUMPREGISTRATIONS"):
        d = pairs(entry)
        d["data"] = pairs(d["RegistrationData"])
        d["args"] = core_args(d["data"]["args"])
        out[d["id"]] = d
    return out


ARG_NAMES = ["regex", "eventTypes", "keyTypes", "readValue"]


def core_args(entry_args):
    """The reader args of a dump as a dict of the four the brief names, in that order.

    A trailing 'commands' pair (register(commands=...), not tested here) is tolerated when
    it is None."""
    flat = entry_args
    assert flat[0:8:2] == ARG_NAMES, flat
    extra = pairs(flat[8:])
    assert set(extra) <= {"commands"} and all(v is None for v in extra.values()), flat
    return pairs(flat[:8])


def reg_data(r, rid):
    regs = dump_regs(r)
    assert rid in regs, (rid, list(regs))
    return regs[rid]["data"]


def register(r, code, *args):
    """Run a script that registers and stores its register() return value in a key."""
    assert pyexecute(r, code, *args) == "OK"


def records(r, key):
    return [ast.literal_eval(x) for x in r.lrange(key, 0, -1)]


def log_step(logkey):
    """A foreach that appends str(record) to the list `logkey`."""
    return f".foreach(lambda x: execute('rpush', '{logkey}', str(x)))"


def registered_execs(r):
    out = []
    for entry in r.execute_command("RG.DUMPEXECUTIONS"):
        d = pairs(entry)
        if d["registered"] == 1:
            out.append(d)
    return out


def seq(eid):
    shard, n = eid.rsplit("-", 1)
    assert shard == ZERO, eid
    return int(n)


def wait_finished(r, rid, n, timeout=20):
    """Poll until registration rid has n finished executions (success + failure + aborted)."""
    def done():
        d = reg_data(r, rid)
        return d["numSuccess"] + d["numFailures"] + d["numAborted"] >= n
    wait_until(done, timeout=timeout, what=f"{n} finished executions of {rid}")
    return reg_data(r, rid)


# ---------------------------------------------------------------------------- recipe 1

def recipe1_source():
    with open(RECIPE1) as f:
        return f.read()


def write_keys(c, n, prefix="k:"):
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"{prefix}{i}", i)
    pipe.execute()
    return {f"{prefix}{i}" for i in range(n)}


def test_recipe1_as_printed_async(fresh_server):
    s = fresh_server()
    c = s.client()
    code = recipe1_source()
    assert "builder.register()" in code
    assert pyexecute(c, code) == "OK"
    (rid,) = dump_regs(c)
    assert dump_regs(c)[rid]["data"]["mode"] == "async"
    written = write_keys(c, 10_000)
    wait_until(lambda: c.scard("all_keys") >= 10_000, timeout=40,
               what="SCARD all_keys to reach 10000")
    members = c.smembers("all_keys")
    assert members == written
    assert "all_keys" not in members
    # a few more writes of other types are picked up too
    c.hset("h:1", "f", "v")
    c.lpush("l:1", "x")
    wait_until(lambda: c.scard("all_keys") == 10_002, timeout=10, what="two more keys")
    assert c.smembers("all_keys") == written | {"h:1", "l:1"}
    assert s.alive()


def test_recipe1_sync_mode(fresh_server):
    s = fresh_server()
    c = s.client()
    code = recipe1_source().replace("builder.register()", "builder.register(mode='sync')")
    assert "mode='sync'" in code
    assert pyexecute(c, code) == "OK"
    (rid,) = dump_regs(c)
    written = write_keys(c, 10_000)
    # no polling: every sync execution ran inside its SET
    assert c.scard("all_keys") == 10_000
    assert c.smembers("all_keys") == written
    data = reg_data(c, rid)
    assert data["mode"] == "sync"
    # the trigger's own SADDs raise no further events on Redis 7.0
    assert data["numTriggered"] == 10_000
    assert data["numSuccess"] == 10_000
    assert data["numFailures"] == 0
    c.delete("k:0")
    assert c.scard("all_keys") == 10_000  # a del adds the (gone) key's name again: no change
    c.set("extra", 1)
    assert c.sismember("all_keys", "extra")
    assert not c.sismember("all_keys", "all_keys")


def test_sync_runs_of_one_registration_stay_apart(r):
    """A registration's runs are served by the same prepared steps (a run that ended clean
    is reused): what one event's run collected or failed on never reaches the next, and two
    registrations with the same step kinds keep their own functions."""
    register(r, "GB().map(lambda x: x['key'])"
                ".map(lambda k: k if not k.startswith('apart:bad') else 1 / 0)"
                ".foreach(lambda k: execute('rpush', 'apart:log', k))"
                ".register(prefix='apart:*', mode='sync', eventTypes=['set'])")
    register(r, "GB().map(lambda x: x['key'])"
                ".map(lambda k: k.upper())"
                ".foreach(lambda k: execute('rpush', 'apart:log2', k))"
                ".register(prefix='apart:*', mode='sync', eventTypes=['set'])")
    rids = [rid for rid, d in dump_regs(r).items() if d["args"]["regex"] == "apart:*"]
    before = {e["executionId"] for e in registered_execs(r)}
    for i in range(3):
        r.set(f"apart:{i}", 1)
        r.set(f"apart:bad{i}", 1)
    assert r.lrange("apart:log", 0, -1) == ["apart:0", "apart:1", "apart:2"]
    assert r.lrange("apart:log2", 0, -1) == [
        "APART:0", "APART:BAD0", "APART:1", "APART:BAD1", "APART:2", "APART:BAD2"]
    datas = [reg_data(r, rid) for rid in rids]
    failures = sorted((d["numSuccess"], d["numFailures"]) for d in datas)
    assert failures == [(3, 3), (6, 0)], failures
    # each run kept its own outcome: one error for a bad key, none for a good one
    runs = [e["executionId"] for e in registered_execs(r) if e["executionId"] not in before]
    errors = [len(r.execute_command("RG.GETRESULTS", eid)[1]) for eid in runs]
    assert sorted(errors) == [0] * 9 + [1] * 3, errors


# ---------------------------------------------------------------------------- register() basics

def test_register_returns_id_and_pyexecute_replies_ok(r):
    rid = register_id(r, "GB().register(prefix='rid:*', mode='sync')")
    shard, n = rid.rsplit("-", 1)
    assert shard == ZERO and n.isdigit()
    regs = dump_regs(r)
    assert list(regs) == [rid]
    rid2 = register_id(r, "GB().register(prefix='rid2:*', mode='sync')")
    assert rid2 != rid and seq(rid2) > seq(rid)
    assert set(dump_regs(r)) == {rid, rid2}


def test_script_that_raises_after_register_leaves_nothing(r):
    before = dump_regs(r)
    sessions_before = r.execute_command("RG.PYDUMPSESSIONS")
    code = ("GB().foreach(lambda x: execute('incr', 'raise:count'))"
            ".register(prefix='raise:*', mode='sync')\n"
            "raise Exception('boom after register')\n")
    with pytest.raises(Exception) as e:
        pyexecute(r, code)
    assert "boom after register" in str(e.value)
    assert dump_regs(r) == before
    assert r.execute_command("RG.PYDUMPSESSIONS") == sessions_before
    r.set("raise:k", 1)
    assert r.get("raise:count") is None


def test_bad_register_arguments_are_refused(r):
    for code in [
        "GB().register(prefix='bad:*', mode='bogus')",
        "GB().register(prefix='bad:*', noSuchArgument=1)",
    ]:
        with pytest.raises(Exception):
            pyexecute(r, code)
    assert dump_regs(r) == {}


# ---------------------------------------------------------------------------- prefix forms

def test_prefix_star_matches_prefix_only(r):
    register(r, "GB()" + log_step("log:pfx") + ".register(prefix='p:*', mode='sync')")
    for k in ["p:1", "p:abc", "p:", "q:1", "p", "xp:1", "P:1"]:
        r.set(k, "v")
    assert [x["key"] for x in records(r, "log:pfx")] == ["p:1", "p:abc", "p:"]


def test_prefix_without_star_is_exact_key(r):
    register(r, "GB()" + log_step("log:exact") + ".register(prefix='exact', mode='sync')")
    for k in ["exact", "exact2", "exac", "EXACT", "exact:"]:
        r.set(k, "v")
    r.delete("exact")
    r.hset("exact", "f", "v")
    assert [(x["key"], x["event"]) for x in records(r, "log:exact")] == [
        ("exact", "set"), ("exact", "del"), ("exact", "hset")]


def test_default_prefix_matches_every_key(r):
    register(r, "GB().filter(lambda x: x['key'] != 'log:all')"
                ".foreach(lambda x: execute('rpush', 'log:all', x['key']))"
                ".register(mode='sync')")
    regs = dump_regs(r)
    (rid,) = regs
    assert regs[rid]["args"]["regex"] == "*"
    for k in ["a", "zz:1", "{tag}x", "ümlaut"]:
        r.set(k, 1)
    assert r.lrange("log:all", 0, -1) == ["a", "zz:1", "{tag}x", "ümlaut"]


# ---------------------------------------------------------------------------- eventTypes / keyTypes

def test_event_types_filter(r):
    register(r, "GB()" + log_step("log:ev") +
             ".register(prefix='ev:*', eventTypes=['set', 'del'], mode='sync')")
    r.set("ev:1", "a")
    r.hset("ev:2", "f", "v")
    r.incrby("ev:3", 5)
    r.lpush("ev:4", "x")
    r.delete("ev:1")
    r.delete("ev:2")
    assert [(x["key"], x["event"]) for x in records(r, "log:ev")] == [
        ("ev:1", "set"), ("ev:1", "del"), ("ev:2", "del")]
    (rid,) = dump_regs(r)
    assert dump_regs(r)[rid]["args"]["eventTypes"] == ["set", "del"]


def test_event_names_seen_without_filter(r):
    register(r, "GB()" + log_step("log:evn") + ".register(prefix='evn:*', mode='sync')")
    r.set("evn:s", "1")
    r.incrby("evn:s", 2)
    r.hset("evn:h", "f", "v")
    r.lpush("evn:l", "x")
    r.sadd("evn:set", "m")
    r.expire("evn:s", 100)
    r.delete("evn:h")
    assert [(x["key"], x["event"]) for x in records(r, "log:evn")] == [
        ("evn:s", "set"), ("evn:s", "incrby"), ("evn:h", "hset"), ("evn:l", "lpush"),
        ("evn:set", "sadd"), ("evn:s", "expire"), ("evn:h", "del")]


def test_expired_event(r):
    register(r, "GB()" + log_step("log:exp") +
             ".register(prefix='exp:*', eventTypes=['expired'], mode='sync')")
    r.set("exp:k", "v", px=50)
    r.set("exp:other", "v")
    wait_until(lambda: r.llen("log:exp") >= 1, timeout=10, what="the expired event")
    recs = records(r, "log:exp")
    assert len(recs) == 1
    assert recs[0]["key"] == "exp:k" and recs[0]["event"] == "expired"
    assert recs[0]["type"] == "empty" and recs[0]["value"] is None


def test_key_types_filter(r):
    register(r, "GB()" + log_step("log:kt") +
             ".register(prefix='kt:*', keyTypes=['hash', 'list'], mode='sync')")
    r.set("kt:s", "1")
    r.hset("kt:h", "f", "v")
    r.rpush("kt:l", "a")
    r.sadd("kt:set", "m")
    r.zadd("kt:z", {"m": 1})
    r.xadd("kt:x", {"f": "v"})
    recs = records(r, "log:kt")
    assert [(x["key"], x["type"]) for x in recs] == [("kt:h", "hash"), ("kt:l", "list")]
    (rid,) = dump_regs(r)
    assert dump_regs(r)[rid]["args"]["keyTypes"] == ["hash", "list"]


def test_key_types_each_type(r):
    register(r, "GB()" + log_step("log:kt2") +
             ".register(prefix='kt2:*', keyTypes=['set', 'zset', 'stream', 'string'],"
             " mode='sync')")
    r.hset("kt2:h", "f", "v")
    r.sadd("kt2:set", "m")
    r.zadd("kt2:z", {"m": 1})
    r.xadd("kt2:x", {"f": "v"}, id="1-1")
    r.set("kt2:s", "v")
    assert [(x["key"], x["type"], x["value"]) for x in records(r, "log:kt2")] == [
        ("kt2:set", "set", None), ("kt2:z", "zset", None), ("kt2:x", "stream", None),
        ("kt2:s", "string", "v")]


# ---------------------------------------------------------------------------- record shapes

def test_record_shapes_sync(r):
    register(r, "GB()" + log_step("log:rec") + ".register(prefix='rec:*', mode='sync')")
    r.set("rec:s", "hello")
    r.hset("rec:h", mapping={"a": "1", "b": "2"})
    r.rpush("rec:l", "x", "y")
    r.delete("rec:s")
    assert records(r, "log:rec") == [
        {"key": "rec:s", "value": "hello", "type": "string", "event": "set"},
        {"key": "rec:h", "value": {"a": "1", "b": "2"}, "type": "hash", "event": "hset"},
        {"key": "rec:l", "value": ["x", "y"], "type": "list", "event": "rpush"},
        {"key": "rec:s", "value": None, "type": "empty", "event": "del"},
    ]


def test_record_shapes_async(r):
    rid = register_id(r, "GB()" + log_step("log:reca") + ".register(prefix='reca:*')")
    r.set("reca:s", "hello")
    wait_until(lambda: r.llen("log:reca") == 1, what="async set record")
    r.delete("reca:s")
    wait_until(lambda: r.llen("log:reca") == 2, what="async del record")
    assert records(r, "log:reca") == [
        {"key": "reca:s", "value": "hello", "type": "string", "event": "set"},
        {"key": "reca:s", "value": None, "type": "empty", "event": "del"},
    ]
    assert reg_data(r, rid)["mode"] == "async"


def test_async_value_is_read_when_the_execution_runs(r):
    # inside MULTI no execution can run until EXEC: both async executions read the final
    # value, while sync ones read the value at their event
    register(r, "GB()" + log_step("log:late") + ".register(prefix='late:*')")
    register(r, "GB()" + log_step("log:early") + ".register(prefix='early:*', mode='sync')")
    for p in ("late", "early"):
        pipe = r.pipeline(transaction=True)
        pipe.set(f"{p}:k", "first")
        pipe.set(f"{p}:k", "second")
        pipe.set(f"{p}:gone", "x")
        pipe.delete(f"{p}:gone")
        pipe.execute()
    assert [(x["event"], x["value"], x["type"]) for x in records(r, "log:early")] == [
        ("set", "first", "string"), ("set", "second", "string"), ("set", "x", "string"),
        ("del", None, "empty")]
    wait_until(lambda: r.llen("log:late") == 4, what="four async records")
    late = records(r, "log:late")
    by_key = {}
    for x in late:
        by_key.setdefault(x["key"], []).append((x["event"], x["value"], x["type"]))
    # (async executions may finish in any order)
    assert sorted(by_key["late:k"]) == [("set", "second", "string")] * 2
    assert sorted(by_key["late:gone"]) == [("del", None, "empty"), ("set", None, "empty")]
    assert set(by_key) == {"late:k", "late:gone"}


def test_read_value_false_record_shape(r):
    rid = register_id(r, "GB()" + log_step("log:rv") +
                      ".register(prefix='rv:*', readValue=False, mode='sync')")
    r.set("rv:s", "v")
    r.hset("rv:h", "f", "v")
    r.delete("rv:s")
    assert records(r, "log:rv") == [
        {"key": "rv:s", "event": "set"},
        {"key": "rv:h", "event": "hset"},
        {"key": "rv:s", "event": "del"},
    ]
    assert dump_regs(r)[rid]["args"]["readValue"] == 0


def test_default_args_in_dump(r):
    rid = register_id(r, "GB().register(prefix='da:*')")
    d = dump_regs(r)[rid]
    assert d["args"] == {"regex": "da:*", "eventTypes": None, "keyTypes": None, "readValue": 1}
    assert d["data"]["mode"] == "async"


# ---------------------------------------------------------------------------- keymiss

def test_keymiss_reaches_only_opted_in_registrations(r):
    register(r, "GB()" + log_step("log:kmall") + ".register(prefix='km:*', mode='sync')")
    register(r, "GB()" + log_step("log:kmmiss") +
             ".register(prefix='km:*', eventTypes=['keymiss'], mode='sync')")
    assert r.get("km:nothing") is None
    r.hget("km:nohash", "f")
    r.set("km:present", "v")
    assert r.get("km:present") == "v"  # a hit is no keymiss
    miss = records(r, "log:kmmiss")
    assert [(x["key"], x["event"]) for x in miss] == [
        ("km:nothing", "keymiss"), ("km:nohash", "keymiss")]
    assert miss[0]["type"] == "empty" and miss[0]["value"] is None
    assert [(x["key"], x["event"]) for x in records(r, "log:kmall")] == [("km:present", "set")]


def test_keymiss_async(fresh_server):
    # own server: if the execution's own read of the missing key raised a new keymiss,
    # this registration would trigger itself forever
    s = fresh_server()
    r = s.client()
    rid = register_id(r, "GB()" + log_step("log:kma") +
                      ".register(prefix='kma:*', eventTypes=['keymiss'])")
    r.get("kma:x")
    wait_until(lambda: r.llen("log:kma") >= 1, what="async keymiss record")
    rec = records(r, "log:kma")[0]
    assert rec == {"key": "kma:x", "value": None, "type": "empty", "event": "keymiss"}
    wait_finished(r, rid, 1)
    r.set("kma:y", 1)  # not a keymiss: does not count
    d = reg_data(r, rid)
    assert d["numTriggered"] == 1, d
    assert r.llen("log:kma") == 1


def test_keymiss_async_read_value_false(fresh_server):
    s = fresh_server()
    r = s.client()
    rid = register_id(r, "GB()" + log_step("log:kmb") +
                      ".register(prefix='kmb:*', eventTypes=['keymiss'], readValue=False)")
    r.get("kmb:x")
    wait_until(lambda: r.llen("log:kmb") >= 1, what="async keymiss record")
    assert records(r, "log:kmb") == [{"key": "kmb:x", "event": "keymiss"}]
    d = wait_finished(r, rid, 1)
    assert d["numTriggered"] == 1


# ---------------------------------------------------------------------------- modes

def test_sync_mode_write_visible_when_command_returns(r):
    register(r, "GB().foreach(lambda x: execute('set', 'sm:copy:' + x['key'], x['value']))"
                ".register(prefix='sm:k:*', mode='sync')")
    for i in range(50):
        r.set(f"sm:k:{i}", f"v{i}")
        assert r.get(f"sm:copy:sm:k:{i}") == f"v{i}"


def test_sync_trigger_writes_raise_events(r):
    # SPEC: a sync trigger's own writes reach the registrations on the keys it wrote
    # (Redis does not notify the callback that wrote them; the module does, once).
    register(r, "GB().foreach(lambda x: execute('set', 'st:b:' + x['key'], 1))"
                ".register(prefix='st:a:*', mode='sync')")
    rb = register_id(r, "GB().foreach(lambda x: execute('incr', 'st:count'))"
                        ".register(prefix='st:b:*', mode='sync')")
    r.set("st:a:1", 1)
    assert r.get("st:b:st:a:1") == "1"
    assert r.get("st:count") == "1"
    assert reg_data(r, rb)["numTriggered"] == 1
    r.set("st:b:direct", 1)  # a client's write fires it too
    assert r.get("st:count") == "2"


def test_async_trigger_writes_raise_events(fresh_server):
    # own server: a sync registration fired by an async execution's write
    s = fresh_server()
    r = s.client()
    register(r, "GB().foreach(lambda x: execute('set', 'at:b:' + x['key'], 1))"
                ".register(prefix='at:a:*')")
    register(r, "GB().foreach(lambda x: execute('incr', 'at:count'))"
                ".register(prefix='at:b:*', mode='sync')")
    r.set("at:a:1", 1)
    wait_until(lambda: r.get("at:count") == "1", what="the chained registration")
    assert r.get("at:b:at:a:1") == "1"
    assert s.alive()


def test_async_chain_of_async_registrations(fresh_server):
    s = fresh_server()
    r = s.client()
    register(r, "GB().foreach(lambda x: execute('set', 'aa:b:' + x['key'], 1))"
                ".register(prefix='aa:a:*')")
    register(r, "GB().foreach(lambda x: execute('incr', 'aa:count'))"
                ".register(prefix='aa:b:*')")
    for i in range(10):
        r.set(f"aa:a:{i}", 1)
    wait_until(lambda: r.get("aa:count") == "10", what="the chained async registration")
    assert s.alive()


@pytest.mark.parametrize("mode", ["async", "async_local", "sync"])
def test_each_mode_fires(r, mode):
    p = f"mode{mode}"
    rid = register_id(r, f"GB().foreach(lambda x: execute('incr', '{p}:count'))"
                         f".register(prefix='{p}:k:*', mode='{mode}')")
    assert reg_data(r, rid)["mode"] == mode
    for i in range(20):
        r.set(f"{p}:k:{i}", i)
    if mode == "sync":
        assert r.get(f"{p}:count") == "20"
    else:
        wait_until(lambda: r.get(f"{p}:count") == "20", what=f"20 {mode} executions")
    data = wait_finished(r, rid, 20)
    assert data["numTriggered"] == 20
    assert data["numSuccess"] == 20
    assert data["numFailures"] == 0
    assert r.get(f"{p}:count") == "20"


def test_on_registered_runs(r):
    register(r, """
state = {}
def init():
    state['ready'] = 'yes'
    execute('incr', 'onreg:called')
GB().foreach(lambda x: execute('set', 'onreg:seen', state.get('ready', 'no'))) \\
    .register(prefix='onreg:k', mode='sync', onRegistered=init)
""")
    wait_until(lambda: r.get("onreg:called") == "1", what="onRegistered to run")
    r.set("onreg:k", 1)
    assert r.get("onreg:seen") == "yes"
    assert r.get("onreg:called") == "1"


def test_convert_to_str_and_collect_arguments_accepted(r):
    rid = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:cs'))"
                         ".register(prefix='cs:*', mode='sync', convertToStr=False, "
                         "collect=False)")
    pd = dump_regs(r)[rid]["PD"]
    assert "MapStep" not in pd and "CollectStep" not in pd
    rid2 = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:cs2'))"
                          ".register(prefix='cs2:*', mode='sync')")
    assert dump_regs(r)[rid2]["PD"] == "ForEachStep -> MapStep -> CollectStep"
    r.set("cs:1", 1)
    r.set("cs2:1", 1)
    assert r.get("cnt:cs") == "1" and r.get("cnt:cs2") == "1"


# ---------------------------------------------------------------------------- stats and dumps

def test_dump_registrations_shape(r):
    rid = register_id(r, "GB(desc='my description').map(lambda x: x['key'])"
                         ".filter(lambda x: True)"
                         ".register(prefix='shape:*', eventTypes=['set'], keyTypes=['string'],"
                         " readValue=False, mode='sync')")
    rid2 = register_id(r, "GB().register(prefix='shape2')")
    entries = r.execute_command("RG.DUMPREGISTRATIONS")
    assert len(entries) == 2
    by_id = {e[1]: e for e in entries}
    e = by_id[rid]
    assert e[0::2] == ["id", "reader", "desc", "RegistrationData", "PD", "ExecutionThreadPool",
                       "owner", "ownerDescription", "user"]
    assert e[1] == rid and e[3] == "KeysReader" and e[5] == "my description"
    # After 1.2's fields: the session that made it, its description, whom it acts for.
    (session,) = [pairs(s) for s in r.execute_command("RG.PYDUMPSESSIONS")
                  if rid in pairs(s)["registrations"]]
    assert e[12:] == ["owner", f"session:{session['ID']}", "ownerDescription", None,
                      "user", "default"]
    data = e[7]
    assert data[0::2] == STAT_NAMES
    d = pairs(data)
    assert d["mode"] == "sync"
    for name in ["numTriggered", "numSuccess", "numFailures", "numAborted",
                 "lastRunDurationMS", "totalRunDurationMS", "numOverflows"]:
        assert d[name] == 0, name
    assert isinstance(d["avgRunDurationMS"], str) and float(d["avgRunDurationMS"]) == 0
    assert d["lastError"] is None
    assert core_args(d["args"]) == {"regex": "shape:*", "eventTypes": ["set"],
                                    "keyTypes": ["string"], "readValue": 0}
    assert e[9] == "MapStep -> FilterStep -> MapStep -> CollectStep"
    assert e[11] == "DefaultPool"
    e2 = by_id[rid2]
    assert e2[5] is None
    assert core_args(pairs(e2[7])["args"]) == {"regex": "shape2", "eventTypes": None,
                                               "keyTypes": None, "readValue": 1}
    # stats move after triggers; durations are whole ms and consistent
    for i in range(5):
        r.set(f"shape:{i}", i)
    d = reg_data(r, rid)
    assert d["numTriggered"] == 5 and d["numSuccess"] == 5
    assert isinstance(d["lastRunDurationMS"], int) and d["lastRunDurationMS"] >= 0
    assert isinstance(d["totalRunDurationMS"], int)
    assert d["totalRunDurationMS"] >= d["lastRunDurationMS"]
    assert float(d["avgRunDurationMS"]) >= 0


def test_run_durations_measured(r):
    rid = register_id(r, "import time\nGB().foreach(lambda x: time.sleep(0.03))"
                         ".register(prefix='dur:*', mode='sync')")
    r.set("dur:1", 1)
    r.set("dur:2", 1)
    d = reg_data(r, rid)
    assert d["lastRunDurationMS"] >= 25
    assert d["totalRunDurationMS"] >= 50
    assert 25 <= float(d["avgRunDurationMS"]) <= d["totalRunDurationMS"]


def test_failing_step_stats_sync(r):
    rid = register_id(r, "GB().foreach(lambda x: 1 / (len(x['value']) - 3))"
                         ".register(prefix='fail:*', mode='sync')")
    r.set("fail:ok", "abcd")  # 1 / 1
    r.set("fail:bad", "abc")  # 1 / 0
    r.set("fail:ok2", "ab")   # 1 / -1
    d = reg_data(r, rid)
    assert d["numTriggered"] == 3
    assert d["numSuccess"] == 2
    assert d["numFailures"] == 1
    assert d["numAborted"] == 0
    assert isinstance(d["lastError"], str) and "ZeroDivisionError" in d["lastError"]
    assert r.get("fail:bad") == "abc"  # the failed trigger does not fail the write


def test_failing_step_stats_async(r):
    rid = register_id(r, "def f(x):\n    raise ValueError('bad record ' + x['key'])\n"
                         "GB().foreach(f).register(prefix='afail:*')")
    r.set("afail:1", 1)
    r.set("afail:2", 1)
    d = wait_finished(r, rid, 2)
    assert d["numTriggered"] == 2
    assert d["numFailures"] == 2
    assert d["numSuccess"] == 0
    assert "ValueError" in d["lastError"] and "bad record afail:" in d["lastError"]


def test_unregister(r):
    rid = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:unr'))"
                         ".register(prefix='unr:*', mode='sync')")
    keep = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:unr2'))"
                          ".register(prefix='unr2:*', mode='sync')")
    r.set("unr:1", 1)
    assert r.get("cnt:unr") == "1"
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    assert set(dump_regs(r)) == {keep}
    r.set("unr:2", 1)
    assert r.get("cnt:unr") == "1"
    r.set("unr2:1", 1)
    assert r.get("cnt:unr2") == "1"
    with pytest.raises(Exception):
        r.execute_command("RG.UNREGISTER", rid)  # already gone
    for bad in ["nope", ZERO + "-999999", ""]:
        with pytest.raises(Exception):
            r.execute_command("RG.UNREGISTER", bad)
    with pytest.raises(Exception):
        r.execute_command("RG.UNREGISTER")
    assert set(dump_regs(r)) == {keep}


def test_unregister_async_stops_firing(r):
    rid = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:unra'))"
                         ".register(prefix='unra:*')")
    r.set("unra:1", 1)
    wait_until(lambda: r.get("cnt:unra") == "1", what="first async execution")
    assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    # a sync marker registered after shows when later events have been dispatched
    register(r, "GB().foreach(lambda x: execute('incr', 'cnt:unramarker'))"
                ".register(prefix='unra:*', mode='sync')")
    r.set("unra:2", 1)
    assert r.get("cnt:unramarker") == "1"
    assert r.get("cnt:unra") == "1"
    assert rid not in dump_regs(r)


def test_clear_registrations_stats(r):
    rid = register_id(r, "GB().foreach(lambda x: 1 / int(x['value']))"
                         ".register(prefix='clr:*', mode='sync')")
    rid2 = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:clr2'))"
                          ".register(prefix='clr2:*')")
    r.set("clr:a", 1)
    r.set("clr:b", 0)
    r.set("clr2:a", 1)
    wait_finished(r, rid2, 1)
    d = reg_data(r, rid)
    assert d["numTriggered"] == 2 and d["numFailures"] == 1 and d["lastError"]
    assert r.execute_command("RG.CLEARREGISTRATIONSSTATS") == "OK"
    for x in (rid, rid2):
        d = reg_data(r, x)
        for name in ["numTriggered", "numSuccess", "numFailures", "numAborted",
                     "lastRunDurationMS", "totalRunDurationMS", "numOverflows"]:
            assert d[name] == 0, (x, name, d)
        assert float(d["avgRunDurationMS"]) == 0
        assert d["lastError"] is None, d
    # registrations still work and count from zero
    r.set("clr:c", 1)
    d = reg_data(r, rid)
    assert d["numTriggered"] == 1 and d["numSuccess"] == 1 and d["numFailures"] == 0
    with pytest.raises(Exception):
        r.execute_command("RG.CLEARREGISTRATIONSSTATS", "extra")


def test_dump_executions_shows_registered(r):
    before = {e["executionId"] for e in registered_execs(r)}
    rid = register_id(r, "GB().register(prefix='de:*', mode='sync')")
    r.set("de:1", 1)
    execs = [e for e in registered_execs(r) if e["executionId"] not in before]
    assert len(execs) == 1
    assert execs[0]["status"] == "done"
    assert execs[0]["executionId"].startswith(ZERO + "-")
    assert reg_data(r, rid)["numTriggered"] == 1


def test_max_executions_per_registration(fresh_server):
    s = fresh_server(module_args=["MaxExecutionsPerRegistration", 5])
    c = s.client()
    assert c.execute_command("RG.CONFIGGET", "MaxExecutionsPerRegistration") == [5]
    rid = register_id(c, "GB().register(prefix='mx:*', mode='sync')")
    for i in range(20):
        c.set(f"mx:{i}", i)
    execs = registered_execs(c)
    assert len(execs) == 5
    ids = sorted(seq(e["executionId"]) for e in execs)
    assert ids == list(range(ids[-1] - 4, ids[-1] + 1))  # the newest five are kept
    assert all(e["status"] == "done" for e in execs)
    assert reg_data(c, rid)["numTriggered"] == 20
    # async executions are bounded the same way once finished
    rid2 = register_id(c, "GB().register(prefix='mxa:*')")
    for i in range(20):
        c.set(f"mxa:{i}", i)
    wait_finished(c, rid2, 20)
    wait_until(lambda: len(registered_execs(c)) == 10, what="5 kept per registration")
    # a batch run is not counted against a registration
    assert c.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').run()")[1] == []
    assert len(registered_execs(c)) == 10
    assert s.alive()


def test_max_executions_per_registration_runtime_change(fresh_server):
    s = fresh_server()
    c = s.client()
    assert c.execute_command("RG.CONFIGSET", "MaxExecutionsPerRegistration", 3) == ["OK"]
    register_id(c, "GB().register(prefix='mr:*', mode='sync')")
    for i in range(10):
        c.set(f"mr:{i}", i)
    assert len(registered_execs(c)) == 3


def test_unregister_drops_its_executions(fresh_server):
    # RedisGears 1.2 drops a registration's finished executions when it is unregistered
    s = fresh_server()
    c = s.client()
    rid = register_id(c, "GB().register(prefix='ud:*', mode='sync')")
    keep = register_id(c, "GB().register(prefix='uk:*', mode='sync')")
    for i in range(3):
        c.set(f"ud:{i}", i)
        c.set(f"uk:{i}", i)
    assert len(registered_execs(c)) == 6
    assert c.execute_command("RG.UNREGISTER", rid) == "OK"
    assert len(registered_execs(c)) == 3
    assert c.execute_command("RG.UNREGISTER", keep) == "OK"
    assert registered_execs(c) == []


# ---------------------------------------------------------------------------- backpressure

def test_backpressure_flood_nothing_dropped(fresh_server):
    s = fresh_server(module_args=["MaxPendingEvents", 10])
    c = s.client()
    assert c.execute_command("RG.CONFIGGET", "MaxPendingEvents") == [10]
    rid = register_id(c, "import time\n"
                         "def slow(x):\n"
                         "    time.sleep(0.005)\n"
                         "    execute('incr', 'bp:count')\n"
                         "GB().foreach(slow).register(prefix='bp:k:*')")
    pipe = c.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"bp:k:{i}", i)
    assert all(pipe.execute())
    assert c.ping()
    wait_until(lambda: c.get("bp:count") == "500", timeout=40,
               what="all 500 executions (bp:count == 500)")
    d = wait_finished(c, rid, 500, timeout=20)
    assert d["numTriggered"] == 500
    assert d["numSuccess"] == 500
    assert d["numFailures"] == 0
    assert d["numOverflows"] > 0
    assert d["numOverflows"] <= 500
    assert c.get("bp:count") == "500"
    assert s.alive()
    assert c.dbsize() == 501


def test_backpressure_overflow_from_async_execution_writes(fresh_server):
    # One client write starts one async execution, which writes 300 keys from a worker:
    # their events overflow the queue of 2 there (not on the main thread), and must still
    # all run. (Had the client flooded the first registration instead, its overflowed
    # executions would run inline like sync ones, whose writes raise no events on 7.0.)
    s = fresh_server(module_args=["MaxPendingEvents", 2])
    c = s.client()
    first = register_id(c, "def fan_out(x):\n"
                           "    for i in range(300):\n"
                           "        execute('set', 'ow:b:%d' % i, i)\n"
                           "GB().foreach(fan_out).register(prefix='ow:a')")
    rid = register_id(c, "import time\n"
                         "GB().foreach(lambda x: time.sleep(0.002))"
                         ".foreach(lambda x: execute('incr', 'cnt:ow'))"
                         ".register(prefix='ow:b:*')")
    c.set("ow:a", 1)
    wait_until(lambda: c.get("cnt:ow") == "300", timeout=30, what="300 chained executions")
    d = wait_finished(c, rid, 300)
    assert d["numTriggered"] == 300 and d["numSuccess"] == 300
    assert d["numOverflows"] > 0
    assert reg_data(c, first)["numSuccess"] == 1
    assert s.alive()


def test_a_flood_of_events_runs_one_execution_per_event(fresh_server):
    # A registration's waiting events are taken by one worker back to back; each is still
    # its own execution, with its own errors and its own place in the statistics.
    s = fresh_server(module_args=["MaxExecutionsPerRegistration", 2000])
    c = s.client()
    rid = register_id(c, "def f(x):\n"
                         "    if x['key'].endswith('7'):\n"
                         "        raise ValueError('seven ' + x['key'])\n"
                         "    execute('sadd', 'fl:seen', x['key'])\n"
                         "GB().foreach(f).register(prefix='fl:k:*')")
    pipe = c.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"fl:k:{i}", i)
    assert all(pipe.execute())
    d = wait_finished(c, rid, 1000, timeout=60)
    sevens = sum(1 for i in range(1000) if str(i).endswith("7"))
    assert d["numTriggered"] == 1000
    assert d["numFailures"] == sevens and d["numSuccess"] == 1000 - sevens
    assert c.scard("fl:seen") == 1000 - sevens
    execs = [pairs(e) for e in c.execute_command("RG.DUMPEXECUTIONS")]
    ids = [e["executionId"] for e in execs]
    assert len(set(ids)) == len(ids) >= 1000, "one execution per event"
    failed = 0
    for e in execs:
        res = c.execute_command("RG.GETRESULTS", e["executionId"])
        errors = res[1]
        assert len(errors) <= 1, ("one event, one record, at most one error", errors)
        if errors:
            seven = re.search(r"seven fl:k:(\d+)", errors[0])
            assert seven and seven.group(1).endswith("7"), errors
            failed += 1
    assert failed == sevens
    assert s.alive()


def test_events_run_together_stay_each_in_their_own_database(fresh_server):
    # Events of databases 0 and 1 interleaved: a worker runs them a few at a time through
    # one entry into Python, and each still acts in its own event's database, with its
    # own results.
    s = fresh_server()
    c = s.client()
    rid = register_id(c, "GB().map(lambda x: x['key']).foreach("
                         "lambda k: execute('set', k.replace('db:k:', 'db:seen:'), k))"
                         ".register(prefix='db:k:*')")
    pipe = c.pipeline(transaction=False)
    for i in range(300):
        pipe.execute_command("SELECT", i % 2)
        pipe.set(f"db:k:{i}", i)
    pipe.execute()
    wait_finished(c, rid, 300, timeout=60)
    in_db = {db: s.client(db=db) for db in (0, 1)}
    for i in range(300):
        assert in_db[i % 2].get(f"db:seen:{i}") == f"db:k:{i}", i
        assert in_db[1 - i % 2].get(f"db:seen:{i}") is None, i
    # The executions kept (MaxExecutionsPerRegistration) each hold their own event's key.
    results = []
    for e in c.execute_command("RG.DUMPEXECUTIONS"):
        res, errors = c.execute_command("RG.GETRESULTS", pairs(e)["executionId"])
        assert errors == [] and len(res) == 1, (res, errors)
        results.append(res[0])
    assert results and len(set(results)) == len(results)
    assert set(results) <= {f"db:k:{i}" for i in range(300)}
    assert s.alive()


def test_a_slow_event_does_not_hold_up_the_ones_behind_it(fresh_server):
    # The first event's step sleeps (giving the Redis lock back, as time.sleep does in a
    # step): the events written after it still run meanwhile, on another worker.
    s = fresh_server()
    c = s.client()
    rid = register_id(c, "import time\n"
                         "def f(x):\n"
                         "    if x['key'] == 'sl:k:slow':\n"
                         "        time.sleep(3)\n"
                         "    execute('rpush', 'sl:done', x['key'])\n"
                         "GB().foreach(f).register(prefix='sl:k:*')")
    c.set("sl:k:slow", 1)
    wait_until(lambda: reg_data(c, rid)["numTriggered"] == 1, what="the slow event")
    time.sleep(0.05)
    for i in range(20):
        c.set(f"sl:k:{i}", i)
    wait_until(lambda: c.llen("sl:done") >= 20, timeout=2.5,
               what="the 20 quick events, before the slow one ends")
    assert "sl:k:slow" not in c.lrange("sl:done", 0, -1)
    wait_finished(c, rid, 21)
    assert c.lrange("sl:done", 0, -1)[-1] == "sl:k:slow"
    assert s.alive()


def test_flushall_keeps_registrations(r):
    rid = register_id(r, "GB().foreach(lambda x: execute('incr', 'cnt:fl'))"
                         ".register(prefix='fl:*', mode='sync')")
    r.flushall()
    assert rid in dump_regs(r)
    r.set("fl:1", 1)
    assert r.get("cnt:fl") == "1"


def test_unregister_aborts_pending_executions(fresh_server):
    # RedisGears 1.2 aborts a registration's pending executions on RG.UNREGISTER.
    # Every execution waits for the key 'gate'; at most ExecutionThreads (3) can be running
    # when the registration goes away, the other queued ones must not run afterwards.
    s = fresh_server()
    c = s.client()
    rid = register_id(c, "import time\n"
                         "def gated(x):\n"
                         "    deadline = time.time() + 20\n"
                         "    while not execute('exists', 'gate') and time.time() < deadline:\n"
                         "        time.sleep(0.005)\n"
                         "    execute('incr', 'cnt:gate')\n"
                         "GB().foreach(gated).register(prefix='gate:k:*')")
    for i in range(20):
        c.set(f"gate:k:{i}", i)
    assert reg_data(c, rid)["numTriggered"] == 20
    assert c.execute_command("RG.UNREGISTER", rid) == "OK"
    c.set("gate", 1)

    def settled():
        statuses = [pairs(e)["status"] for e in c.execute_command("RG.DUMPEXECUTIONS")]
        return all(st in ("done", "aborted") for st in statuses)
    wait_until(settled, timeout=30, what="no execution left running or queued")
    assert int(c.get("cnt:gate") or 0) <= 3
    assert s.alive()
