"""Black-box tests of command hooks and KeysReader registrations with commands=.

SPEC.md "Readers" (CommandReader register(hook=...), KeysReader register(commands=...)) and
"Runtime API" (call_next, override_reply); PITFALLS.md (command filter: the master client's
replication stream passes untouched).

Every registration on the shared server is removed after each test (see `clean`).
"""
import threading
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import pyexecute, wait_until


# ---------------------------------------------------------------------------- helpers

def pairs(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def reg_ids(c):
    return [pairs(e)["id"] for e in c.execute_command("RG.DUMPREGISTRATIONS")]


def raw_set(c):
    """Let SET/HSET replies through as the server sent them (redis-py maps SET to a bool)."""
    for name in ("SET", "HSET"):
        c.set_response_callback(name, lambda resp, **kw: resp)
    return c


@pytest.fixture
def r(r):
    return raw_set(r)


def timed_client(server, timeout=5):
    return raw_set(server.client(socket_timeout=timeout, retry=Retry(NoBackoff(), 0)))


PASS_THROUGH = "GB('CommandReader').map(lambda x: call_next(*x[1:])).register(hook='set', convertToStr=False)"


# ---------------------------------------------------------------------------- hook basics

def test_hook_record_is_command_and_args(r):
    pyexecute(r, "GB('CommandReader').map(lambda x: '|'.join(x).lower()).register(hook='set')")
    assert r.execute_command("SET", "hk", "v1") == "set|hk|v1"
    # the hook ran instead of the command: nothing stored
    assert r.get("hk") is None


def test_hook_call_next_pass_through(r):
    assert pyexecute(r, PASS_THROUGH) == "OK"
    assert r.set("hk", "v") == "OK"
    assert r.execute_command("SET", "hk2", "w") == "OK"
    assert r.get("hk") == "v"
    assert r.get("hk2") == "w"


def test_hook_call_next_with_modified_args(r):
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + '!'))"
        ".register(hook='set', convertToStr=False)",
    )
    assert r.execute_command("SET", "hk", "v") == "OK"
    assert r.get("hk") == "v!"


@pytest.mark.parametrize("mode", ["sync", "async", "async_local"])
def test_hook_modes(r, mode):
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + '-h'))"
        f".register(hook='set', mode='{mode}', convertToStr=False)",
    )
    assert r.execute_command("SET", "hk", "v") == "OK"
    assert r.get("hk") == "v-h"


def test_hook_convert_to_str_default(r):
    # with the default convertToStr=True the reply is str() of the step's result
    pyexecute(r, "GB('CommandReader').map(lambda x: len(x)).register(hook='set')")
    assert r.execute_command("SET", "hk", "v") == "3"


def test_hook_multiple_results_is_list(r):
    pyexecute(
        r,
        "GB('CommandReader').flatmap(lambda x: ['a', 'b']).register(hook='set')",
    )
    assert r.execute_command("SET", "hk", "v") == ["a", "b"]


def test_hooks_chain_last_registered_first(r):
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + 'A'))"
        ".register(hook='set', convertToStr=False)",
    )
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + 'B'))"
        ".register(hook='set', convertToStr=False)",
    )
    assert r.execute_command("SET", "hk", "v") == "OK"
    # B (last registered) ran first and called A, which called the real SET
    assert r.get("hk") == "vBA"


def test_hook_keyprefix(r):
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(x[1], 'hooked'))"
        ".register(hook='set', keyprefix='p', convertToStr=False)",
    )
    assert r.execute_command("SET", "pkey", "v") == "OK"
    assert r.execute_command("SET", "qkey", "v") == "OK"
    assert r.get("pkey") == "hooked"
    assert r.get("qkey") == "v"


def test_hook_failing_step_gives_error(r):
    pyexecute(r, "GB('CommandReader').map(lambda x: 1/0).register(hook='set')")
    with pytest.raises(redis.ResponseError):
        r.execute_command("SET", "hk", "v")
    assert r.get("hk") is None
    # the server still serves other commands
    assert r.ping()


def test_hook_unregister_restores_command(r):
    pyexecute(r, "GB('CommandReader').map(lambda x: 'hooked').register(hook='set')")
    assert r.execute_command("SET", "hk", "v") == "hooked"
    assert r.get("hk") is None
    for rid in reg_ids(r):
        assert r.execute_command("RG.UNREGISTER", rid) == "OK"
    assert reg_ids(r) == []
    assert r.execute_command("SET", "hk", "v") == "OK"
    assert r.get("hk") == "v"


def test_async_hook_blocks_only_its_client(server, r):
    pyexecute(
        r,
        "import time\n"
        "def f(x):\n"
        "    time.sleep(1.0)\n"
        "    return call_next(*x[1:])\n"
        "GB('CommandReader').map(f).register(hook='set', mode='async', convertToStr=False)",
    )
    c1 = timed_client(server)
    c2 = timed_client(server)
    out = {}

    def setter():
        t0 = time.monotonic()
        out["reply"] = c1.execute_command("SET", "hk", "v")
        out["elapsed"] = time.monotonic() - t0
        out["end"] = time.monotonic()

    try:
        th = threading.Thread(target=setter)
        th.start()
        time.sleep(0.05)
        t0 = time.monotonic()
        assert c2.ping() is True
        ping_done = time.monotonic()
        assert ping_done - t0 < 0.8, "PING from another client waited for the async hook"
        th.join(5)
        assert not th.is_alive()
        assert out["reply"] == "OK"
        assert out["elapsed"] >= 0.9, out
        assert ping_done < out["end"]
        assert c2.get("hk") == "v"
    finally:
        c1.close()
        c2.close()


# ---------------------------------------------------------------------------- unhookable

@pytest.mark.parametrize(
    "cmd",
    ["multi", "exec", "watch", "eval", "evalsha", "fcall", "blpop", "brpop", "xread", "wait",
     "rg.pyexecute", "rg.dumpregistrations", "nosuchcommand_xyz"],
)
def test_unhookable_commands_refused(r, cmd):
    with pytest.raises(redis.ResponseError):
        pyexecute(r, f"GB('CommandReader').map(lambda x: 'x').register(hook='{cmd}')")
    assert reg_ids(r) == []


# ---------------------------------------------------------------------------- recipes' own commands

@pytest.mark.parametrize("mode", ["sync", "async"])
def test_recipe_commands_not_intercepted_by_hooks(r, mode):
    pyexecute(r, "GB('CommandReader').map(lambda x: 'hooked').register(hook='set')")
    # a trigger whose step calls SET itself
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: execute('set', x[1], x[2]))"
        f".register(trigger='dosetrt', mode='{mode}')",
    )
    assert r.execute_command("RG.TRIGGER", "dosetrt", "rk", "rv") == ["OK"]  # RG.TRIGGER replies a list
    assert r.get("rk") == "rv"
    # a batch run's execute() also reaches the real SET
    res = pyexecute(r, "GB('ShardsIDReader').map(lambda x: execute('set', 'rk2', 'v2')).run()")
    assert r.get("rk2") == "v2", res
    # while a client SET still goes through the hook
    assert r.execute_command("SET", "rk3", "v") == "hooked"
    assert r.get("rk3") is None


def test_hook_step_execute_same_command_not_reintercepted(r):
    # the hook itself calls execute('set', ...): it reaches the real command, no recursion
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: execute('set', x[1], x[2] + '-e'))"
        ".register(hook='set', convertToStr=False)",
    )
    assert r.execute_command("SET", "hk", "v") == "OK"
    assert r.get("hk") == "v-e"


def test_keys_registration_execute_not_intercepted(r):
    pyexecute(r, "GB('CommandReader').map(lambda x: 'hooked').register(hook='set')")
    pyexecute(
        r,
        "GB().foreach(lambda x: execute('set', 'copy:' + x['key'], 'c'))"
        ".register(prefix='src:*', mode='async')",
    )
    r.hset("src:1", "f", "v")
    wait_until(lambda: r.get("copy:src:1") == "c", timeout=5, what="async registration's SET")


def test_hooks_stack_behind_an_async_hook(r):
    """1.2 refused a hook after a non-sync one; here the async hook's call_next runs the
    next (sync) hook on its worker, then the command."""
    pyexecute(r, "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + '-sync'))"
                 ".register(hook='set', convertToStr=False)")
    pyexecute(r, "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + '-async'))"
                 ".register(hook='set', mode='async_local', convertToStr=False)")
    assert r.set("st", "v") in ("OK", True)
    assert r.get("st") == "v-async-sync"


# ---------------------------------------------------------------------------- MULTI

def test_hook_inside_multi_exec(r):
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(x[1], x[2] + '-m'))"
        ".register(hook='set', mode='async', convertToStr=False)",
    )
    p = r.pipeline(transaction=True)
    p.execute_command("SET", "mk", "v")
    p.get("mk")
    res = p.execute()
    assert res[0] in ("OK", True), res
    assert res[1] == "v-m", res
    assert r.get("mk") == "v-m"


def test_hook_with_own_reply_inside_multi(r):
    pyexecute(r, "GB('CommandReader').map(lambda x: 'hooked').register(hook='set')")
    p = r.pipeline(transaction=True)
    p.execute_command("SET", "mk", "v")
    p.execute_command("PING")
    res = p.execute()
    assert res[0] == "hooked", res
    assert r.get("mk") is None


# ---------------------------------------------------------------------------- replication

def test_replication_passes_hooks_untouched(fresh_server):
    primary = fresh_server(extra_args=["--repl-diskless-sync-delay", "0"])
    p = primary.client()
    pyexecute(
        p,
        "GB('CommandReader')"
        ".map(lambda x: call_next(x[1], str(int(x[2]) * 2)))"
        ".register(hook='incrby', convertToStr=False)",
    )
    replica = fresh_server(extra_args=["--replicaof", "127.0.0.1", str(primary.port)])
    rc = replica.client()
    wait_until(lambda: rc.info("replication").get("master_link_status") == "up",
               timeout=15, what="replica link up")
    assert p.incrby("k", 5) == 10
    assert p.get("k") == "10"
    wait_until(lambda: rc.get("k") is not None, timeout=10, what="replica sees k")
    time.sleep(0.2)
    assert rc.get("k") == "10"
    p.incrby("k", 1)  # -> 12
    wait_until(lambda: rc.get("k") == "12", timeout=10, what="replica k == 12")
    assert primary.alive() and replica.alive()


# ---------------------------------------------------------------------------- KeysReader commands=

@pytest.mark.parametrize("mode", ["sync", "async"])
def test_commands_filter_only_listed_command(r, mode):
    pyexecute(
        r,
        "GB().foreach(lambda x: execute('incr', 'cnt:' + x['key']))"
        f".register(prefix='cf:*', commands=['hset'], mode='{mode}')",
    )
    assert r.hset("cf:1", "f", "v") == 1
    wait_until(lambda: r.get("cnt:cf:1") == "1", timeout=5, what="hset fired")
    assert r.execute_command("SET", "cf:2", "x") == "OK"
    assert r.hset("cf:3", "f", "v") == 1
    wait_until(lambda: r.get("cnt:cf:3") == "1", timeout=5, what="second hset fired")
    # the SET, sent before the second HSET, never fired
    assert r.get("cnt:cf:2") is None


def test_commands_async_client_waits_for_execution(server, r):
    pyexecute(
        r,
        "import time\n"
        "def f(x):\n"
        "    time.sleep(0.3)\n"
        "    execute('set', 'done:' + x['key'], '1')\n"
        "GB().foreach(f).register(prefix='cw:*', commands=['hset'], mode='async')",
    )
    c = timed_client(server)
    try:
        t0 = time.monotonic()
        assert c.hset("cw:1", "f", "v") == 1  # the command's own reply
        elapsed = time.monotonic() - t0
        assert c.exists("done:cw:1") == 1, "HSET returned before the async execution ended"
        assert elapsed >= 0.25, elapsed
        assert c.hgetall("cw:1") == {"f": "v"}
    finally:
        c.close()


def test_commands_sync_override_reply(r):
    pyexecute(
        r,
        "GB().foreach(lambda x: override_reply('x'))"
        ".register(prefix='ov:*', commands=['hset'], mode='sync')",
    )
    assert r.execute_command("HSET", "ov:1", "f", "v") == "x"
    assert r.hgetall("ov:1") == {"f": "v"}
    # other keys and commands unaffected
    assert r.execute_command("HSET", "other:1", "f", "v") == 1


def test_commands_with_unhookable_command_refused(r):
    with pytest.raises(redis.ResponseError):
        pyexecute(r, "GB().foreach(lambda x: x).register(prefix='*', commands=['multi'])")
    with pytest.raises(redis.ResponseError):
        pyexecute(r, "GB().foreach(lambda x: x).register(prefix='*', commands=['blpop'])")
    assert reg_ids(r) == []


# ---------------------------------------------------------------------------- extra edges

@pytest.mark.parametrize("mode", ["async", "async_local"])
def test_async_hook_failing_step_gives_error(r, mode):
    pyexecute(r, f"GB('CommandReader').map(lambda x: 1/0).register(hook='set', mode='{mode}')")
    with pytest.raises(redis.ResponseError):
        r.execute_command("SET", "hk", "v")
    assert r.get("hk") is None


def test_hook_call_next_error_propagates(r):
    # the real INCRBY fails on a non-integer; call_next raises, the client gets an error
    pyexecute(
        r,
        "GB('CommandReader').map(lambda x: call_next(*x[1:]))"
        ".register(hook='incrby', convertToStr=False)",
    )
    r.execute_command("SET", "ik", "notanumber")
    with pytest.raises(redis.ResponseError):
        r.incrby("ik", 1)
    assert r.get("ik") == "notanumber"
    assert r.incrby("ik2", 3) == 3


def test_hook_registered_uppercase_name(r):
    pyexecute(r, "GB('CommandReader').map(lambda x: 'hooked').register(hook='SET')")
    assert r.execute_command("set", "hk", "v") == "hooked"


def test_commands_registration_inside_multi_runs_sync(r):
    pyexecute(
        r,
        "import time\n"
        "def f(x):\n"
        "    execute('set', 'done:' + x['key'], '1')\n"
        "GB().foreach(f).register(prefix='cm:*', commands=['hset'], mode='async')",
    )
    p = r.pipeline(transaction=True)
    p.hset("cm:1", "f", "v")
    res = p.execute()
    assert res == [1], res
    assert r.exists("done:cm:1") == 1
