"""The safety contract: execute() is a bounded door for recipes and guests, code runs with
its owner's permissions in the right database, internal commands refuse clients, and
commands carry correct flags. Every test here is a repro that once crashed, stopped or
escaped; each now gets a clear error while Redis stays up and nothing else changes."""
import time

import pytest
import redis

from conftest import (RedisServer, guest_bytes, pyexecute, run, upload, wasmrun, wait_until,
                      pairs)

SHARD = "GB('ShardsIDReader')"


def ping_fast(client):
    """Redis answers a PING within 100 ms."""
    t0 = time.monotonic()
    assert client.ping()
    assert time.monotonic() - t0 < 0.1


def step_error(r, expr, mode="async"):
    """The one error of a run whose single step evaluates `expr` (a Python expression)."""
    results, errors = run(r, f"{SHARD}.map(lambda x: {expr}).run(mode='{mode}')")
    assert results == [] and len(errors) == 1, (results, errors)
    return errors[0]


def guest_call(r, *args, job="exec"):
    """What the kitchen guest's execute(args) gave: its reply's text or 'ERR: ...'."""
    results, errors = wasmrun(r, "kitchen", job, *args)
    assert errors == [] and len(results) == 1, (results, errors)
    return results[0]


@pytest.fixture
def k(r):
    upload(r, "kitchen")
    return r


# --- execute() never crashes or stops Redis -------------------------------------------

BLOCKING_FROM_A_STEP = [
    "execute('rg.pyexecute', 'GB().run()')",
    "execute('rg.wasmrun', 'kitchen', 'keys')",
    "execute('rg.trigger', 'safety_async')",
]


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("expr", BLOCKING_FROM_A_STEP)
def test_blocking_gears_commands_from_a_step_are_refused(k, mode, expr):
    pyexecute(k, "GB('CommandReader').map(lambda x: 1).register(trigger='safety_async', mode='async')")
    err = step_error(k, expr, mode)
    assert "not possible here" in err or "can not run" in err, err
    ping_fast(k)


def test_blocking_gears_command_from_top_level_script_is_refused(r):
    with pytest.raises(redis.ResponseError, match="can not run inside MULTI"):
        pyexecute(r, "execute('rg.pyexecute', 'GB().run()')")
    ping_fast(r)


def test_getresultsblocking_of_a_running_execution_from_a_step(r):
    eid = pyexecute(r, f"import time\n{SHARD}.map(lambda x: time.sleep(1.5)).run()", "UNBLOCKING")
    err = step_error(r, f"execute('rg.getresultsblocking', '{eid}')")
    assert "RG.GETRESULTSBLOCKING would block its client" in err
    ping_fast(r)
    wait_until(lambda: status(r, eid) == "done", timeout=10, what="the sleeping run")


def status(r, eid):
    plan = pairs(pairs(r.execute_command("RG.GETEXECUTION", eid)[0])["execution_plan"])
    return plan["status"]


@pytest.mark.parametrize("job", ["exec", "exec_sync"])
def test_guest_calls_no_gears_command(k, job):
    for args in (("rg.pyexecute", "GB().run()"), ("rg.wasmrun", "kitchen", "keys"),
                 ("rg.innerhook", "set", "a", "b"), ("rg.configset", "BatchSize", "1")):
        got = guest_call(k, *args, job=job)
        assert got.startswith("ERR: ") and "may not call" in got or "internal" in got, got
    assert k.execute_command("RG.CONFIGGET", "BatchSize") == [512]
    ping_fast(k)


@pytest.mark.parametrize("args", [("debug", "segfault"), ("shutdown", "now", "nosave"),
                                  ("debug", "sleep", "5"), ("monitor",), ("multi",),
                                  ("subscribe", "ch")])
def test_commands_that_stop_or_need_a_connection_are_refused(k, args):
    expr = "execute(" + ", ".join(repr(a) for a in args) + ")"
    for mode in ("async", "sync"):
        assert "is not allowed here" in step_error(k, expr, mode)
    for job in ("exec", "exec_sync"):
        assert "is not allowed here" in guest_call(k, *args, job=job)
    ping_fast(k)


def test_wrong_arity_is_an_error_not_a_crash(k):
    for args in (("set", "k"), ("publish",), ("object", "encoding"), ("config",), ("hget", "h")):
        expr = "execute(" + ", ".join(repr(a) for a in args) + ")"
        assert "wrong number of arguments" in step_error(k, expr)
        assert "wrong number of arguments" in guest_call(k, *args)
    ping_fast(k)


# --- the guest sandbox holds through execute() ----------------------------------------

@pytest.mark.parametrize("args", [("acl", "setuser", "evil", "on", ">p", "~*", "+@all"),
                                  ("save",), ("client", "kill", "type", "normal"),
                                  ("config", "set", "maxmemory", "1"), ("module", "list"),
                                  ("eval", "return 1", "0")])
def test_guest_calls_as_a_script(k, args):
    users = k.acl_users()
    got = guest_call(k, *args)
    assert got.startswith("ERR: ") and "script" in got, got
    assert k.acl_users() == users
    assert k.config_get("maxmemory") == {"maxmemory": "0"}
    ping_fast(k)


def test_guest_still_reads_and_writes(k):
    assert "OK" in guest_call(k, "set", "g:1", "v")
    assert k.get("g:1") == "v"


# --- internal commands refuse clients, flags are right --------------------------------

def test_internal_commands_refuse_clients(r):
    users = r.acl_users()
    with pytest.raises(redis.ResponseError, match="internal to the module"):
        r.execute_command("RG.INNERHOOK", "ACL", "SETUSER", "x", "on", ">p", "~*", "+@all")
    with pytest.raises(redis.ResponseError, match="internal to the module"):
        r.execute_command("RG.INNERREGISTER", "sid", "", "GB().register()", "0", "x-1")
    with pytest.raises(redis.ResponseError, match="internal to the module"):
        r.execute_command("RG.INNERWASM", "g", "0", "", "", b"\0asm")
    assert r.acl_users() == users
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []
    assert r.execute_command("RG.WASMLIST") == []


def flags(r, name):
    return set(r.execute_command("COMMAND", "INFO", name)[name]["flags"])


def test_command_flags(r):
    for name in ("rg.pyexecute", "rg.configset", "rg.unregister", "rg.innerregister",
                 "rg.innerwasm", "rg.pauseregistrations"):
        assert "admin" in flags(r, name), name
    for name in ("rg.configset", "rg.abortexecution", "rg.dropexecution",
                 "rg.clearregistrationsstats"):
        assert "readonly" not in flags(r, name), name
    for name in ("rg.pyexecute", "rg.wasmupload", "rg.wasmrun", "rg.innerregister"):
        assert "noscript" in flags(r, name), name
    for name in ("rg.getexecution", "rg.dumpregistrations", "rg.configget", "rg.wasmlist"):
        assert "readonly" in flags(r, name), name


# --- the right database -----------------------------------------------------------------

def test_select_is_refused_and_nothing_else_changes(r):
    r.set("keep", "1")
    results, errors = run(r, f"{SHARD}.foreach(lambda x: [execute('SELECT', '9'), execute('FLUSHDB')]).run()")
    assert len(errors) == 1 and "'select' is not allowed" in errors[0]
    assert r.get("keep") == "1"


def test_a_run_acts_on_its_clients_database(server):
    c3 = server.client(db=3)
    c0 = server.client(db=0)
    c0.flushall()
    c3.set("a", "3")
    c0.set("b", "0")
    results, errors = run(c3, "GB().map(lambda x: execute('set', x['key'] + ':copy', x['value'])).run()")
    assert errors == []
    assert sorted(c3.keys()) == ["a", "a:copy"]
    assert c0.keys() == ["b"]
    c0.flushall()


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_a_trigger_acts_on_its_events_database(server, mode):
    c0 = server.client()
    c5 = server.client(db=5)
    c0.flushall()
    pyexecute(c0, "GB().foreach(lambda x: execute('set', 'seen:' + x['key'], x['value']))"
                  f".register(prefix='ev:*', mode='{mode}')")
    c5.set("ev:1", "v")
    wait_until(lambda: c5.get("seen:ev:1") == "v", what="the trigger's write in db 5")
    assert c0.keys() == []
    for e in c0.execute_command("RG.DUMPREGISTRATIONS"):
        c0.execute_command("RG.UNREGISTER", pairs(e)["id"])
    c0.flushall()


def test_a_hook_acts_on_the_clients_database(server):
    c0 = server.client()
    c4 = server.client(db=4)
    c0.flushall()
    pyexecute(c0, "GB('CommandReader').map(lambda x: call_next(*x[1:])).register(hook='set', convertToStr=False)")
    assert c4.set("h", "v")
    assert c4.get("h") == "v" and c0.get("h") is None
    for e in c0.execute_command("RG.DUMPREGISTRATIONS"):
        c0.execute_command("RG.UNREGISTER", pairs(e)["id"])
    c0.flushall()


def test_hooking_select_is_refused(r):
    for reg in ("register(hook='select')", "register(commands=['select'])"):
        with pytest.raises(redis.ResponseError):
            pyexecute(r, f"GB('CommandReader').{reg}" if "hook" in reg else f"GB().{reg}")
    assert r.execute_command("RG.DUMPREGISTRATIONS") == []


# --- code runs with its owner's permissions: the ACL matrix ----------------------------

USERS = {
    # name: ACL rules. RG.PYEXECUTE is @dangerous where the server has module command
    # categories (Redis 7.2+, Valkey), so the users that send Python are granted it by name.
    "ops": ["~*", "+@all", "-@dangerous", "+rg.pyexecute"],
    "app": ["~app:*", "+@all", "-@dangerous", "+rg.pyexecute"],
    "reader": ["~*", "+@read", "+rg.innerhook"],
    "deployer": ["~app:*", "+@read", "+@write", "-@dangerous", "+rg.wasmupload",
                 "+rg.wasmrun", "+rg.wasmlist", "+rg.wasmdelete", "+rg.innerhook"],
}


@pytest.fixture(scope="module")
def acl_server():
    s = RedisServer().start()
    admin = s.client()
    for name, rules in USERS.items():
        admin.acl_setuser(name, enabled=True, passwords=["+pw"], reset=True)
        admin.execute_command("ACL", "SETUSER", name, *rules)
    yield s
    alive = s.alive()
    log = s.log()
    s.stop()
    assert alive, log[-3000:]


def as_user(server, name):
    return server.client(username=name, password="pw")


def may(fn):
    """'ok' if fn() works, 'noperm' if ACL refused it (as a reply or a run's error)."""
    try:
        out = fn()
    except redis.exceptions.NoPermissionError:
        return "noperm"
    except redis.ResponseError as e:
        return "noperm" if "NOPERM" in str(e) else f"error: {e}"
    text = repr(out)
    return "noperm" if "NOPERM" in text else "ok"


def recipe_call(c, *args):
    code = f"{SHARD}.map(lambda x: execute(" + ", ".join(repr(a) for a in args) + ")).run()"
    results, errors = run(c, code)
    if errors:
        raise redis.ResponseError(errors[0])
    return results


@pytest.fixture
def acl(acl_server):
    admin = acl_server.client()
    admin.flushall()
    admin.set("secret:1", "s")
    admin.set("app:1", "a")
    yield admin
    for e in admin.execute_command("RG.DUMPREGISTRATIONS"):
        admin.execute_command("RG.UNREGISTER", pairs(e)["id"])
    for g in admin.execute_command("RG.WASMLIST"):
        admin.execute_command("RG.WASMDELETE", pairs(g)["name"])


# What each user may do with: a read of secret:1, a write of app:2, a CONFIG GET.
MATRIX = {
    "ops": {"get secret": "ok", "set secret": "ok", "set app": "ok", "config": "noperm",
            "acl": "noperm", "flushall": "noperm"},
    "app": {"get secret": "noperm", "set secret": "noperm", "set app": "ok",
            "config": "noperm", "acl": "noperm", "flushall": "noperm"},
    "reader": {"get secret": "ok", "set secret": "noperm", "set app": "noperm",
               "config": "noperm", "acl": "noperm", "flushall": "noperm"},
    "deployer": {"get secret": "noperm", "set secret": "noperm", "set app": "ok",
                 "config": "noperm", "acl": "noperm", "flushall": "noperm"},
}
CALLS = {"get secret": ("get", "secret:1"), "set secret": ("set", "secret:2", "x"),
         "set app": ("set", "app:2", "x"), "config": ("config", "set", "maxmemory", "1"),
         "acl": ("acl", "setuser", "evil", "on", ">p", "~*", "+@all"),
         "flushall": ("flushall",)}
# Refused to every guest whoever owns it (noscript: as in Lua).
NOSCRIPT = {"config", "acl"}


@pytest.mark.parametrize("user", list(USERS))
def test_acl_direct_and_through_a_recipe(acl_server, acl, user):
    c = as_user(acl_server, user)
    for what, args in CALLS.items():
        assert may(lambda: c.execute_command(*args)) == MATRIX[user][what], (user, what)
        can_run_python = user in ("ops", "app")
        got = may(lambda: recipe_call(c, *args))
        # A user that may not send code at all is refused RG.PYEXECUTE itself.
        assert got == (MATRIX[user][what] if can_run_python else "noperm"), (user, what, got)
    assert acl.config_get("maxmemory") == {"maxmemory": "0"}
    assert "evil" not in acl.acl_users()
    assert acl.get("secret:1") == "s"


@pytest.mark.parametrize("user", ["ops", "app", "deployer"])
def test_acl_through_a_guest_the_user_uploaded(acl_server, acl, user):
    c = as_user(acl_server, user)
    c.execute_command("RG.WASMUPLOAD", "kitchen", guest_bytes("kitchen"))
    for what, args in CALLS.items():
        got = guest_call(c, *args)
        expected = MATRIX[user][what]
        if what in NOSCRIPT:
            assert got.startswith("ERR: "), got
        elif expected == "ok":
            assert not got.startswith("ERR: "), (user, what, got)
        else:
            assert "NOPERM" in got, (user, what, got)
    # The admin running this user's guest gains nothing: the owner's limits hold.
    got = guest_call(acl, "get", "secret:1")
    assert ("NOPERM" in got) == (MATRIX[user]["get secret"] == "noperm"), got


def test_wrong_arity_for_a_limited_owner_is_an_error_not_a_crash(acl_server, acl):
    """A limited owner's calls go through Redis's ACL check, which reads keys and
    channels at fixed positions: the arity is checked before it."""
    app = as_user(acl_server, "app")
    for args in (("set",), ("get",), ("set", "app:1"), ("publish",), ("object", "encoding"),
                 ("hget", "app:1")):
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            recipe_call(app, *args)
    ping_fast(acl)


def test_a_guests_job_also_needs_the_runners_permissions(acl_server, acl):
    upload(acl, "kitchen")  # owned by the default user, who may do anything
    app = as_user(acl_server, "app")
    assert "NOPERM" in guest_call(app, "get", "secret:1")
    assert "NOPERM" not in guest_call(app, "get", "app:1")


def test_rg_trigger_also_needs_the_callers_permissions(acl_server, acl):
    pyexecute(acl, "GB('CommandReader').map(lambda x: execute('get', x[1]))"
                   ".register(trigger='peek', mode='sync')")
    app = as_user(acl_server, "app")
    assert app.execute_command("RG.TRIGGER", "peek", "app:1") == ["a"]
    with pytest.raises(redis.ResponseError, match="NOPERM user 'app'"):
        app.execute_command("RG.TRIGGER", "peek", "secret:1")
    assert acl.execute_command("RG.TRIGGER", "peek", "secret:1") == ["s"]


def test_a_deployers_registrations_act_as_the_deployer(acl_server, acl):
    dep = as_user(acl_server, "deployer")
    dep.execute_command("RG.WASMUPLOAD", "kitchen", guest_bytes("kitchen"))
    acl.set("wsync:1", "x")  # kitchen's sync registration: SADD wasm_seen (not app:*)
    assert acl.exists("wasm_seen") == 0
    regs = {pairs(e)["id"]: pairs(pairs(e)["RegistrationData"])
            for e in acl.execute_command("RG.DUMPREGISTRATIONS")}
    errors = [d["lastError"] for d in regs.values() if d["numFailures"]]
    assert errors and all("NOPERM" in e for e in errors), regs


@pytest.mark.parametrize("user", list(USERS))
def test_acl_through_a_hook(acl_server, acl, user):
    pyexecute(acl, "GB('CommandReader').map(lambda x: call_next(*x[1:]))"
                   ".register(hook='get', convertToStr=False)")
    pyexecute(acl, "GB('CommandReader').map(lambda x: call_next(*x[1:]))"
                   ".register(hook='flushall', convertToStr=False)")
    c = as_user(acl_server, user)
    got = may(lambda: c.get("secret:1"))
    assert got == MATRIX[user]["get secret"], (user, got)
    # Nobody without @dangerous flushes through a hook.
    assert may(lambda: c.flushall()) == "noperm"
    assert acl.get("secret:1") == "s"


def test_owner_survives_reload(fresh_server):
    s = fresh_server(extra_args=["--enable-debug-command", "yes"])
    admin = s.client()
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", *USERS["app"])
    app = s.client(username="app", password="pw")
    pyexecute(app, "GB().foreach(lambda x: execute('set', 'secret:' + x['key'], '1'))"
                   ".register(prefix='app:*', mode='sync')")
    admin.execute_command("DEBUG", "RELOAD")
    admin.set("app:9", "x")
    assert admin.exists("secret:app:9") == 0
    data = pairs(pairs(admin.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    assert "NOPERM" in data["lastError"]


def test_acl_changes_take_effect_at_once(acl_server, acl):
    """Users allowed everything skip the per-call check; any ACL change (direct, or
    inside MULTI/EXEC) makes the next call ask again."""
    acl.execute_command("ACL", "SETUSER", "tmp", "on", ">pw", "~*", "&*", "+@all")
    tmp = as_user(acl_server, "tmp")
    pyexecute(tmp, "GB().foreach(lambda x: execute('set', 'secret:' + x['key'], '1'))"
                   ".register(prefix='t:*', mode='sync')")
    acl.set("t:1", "x")
    assert acl.get("secret:t:1") == "1"
    acl.execute_command("ACL", "SETUSER", "tmp", "resetkeys", "~t:*")
    acl.set("t:2", "x")
    assert acl.exists("secret:t:2") == 0
    pipe = acl.pipeline(transaction=True)
    pipe.execute_command("ACL", "SETUSER", "tmp", "~*")
    pipe.execute()
    acl.set("t:3", "x")
    assert acl.get("secret:t:3") == "1"
    acl.execute_command("ACL", "DELUSER", "tmp")
    acl.set("t:4", "x")
    assert acl.exists("secret:t:4") == 0
    data = pairs(pairs(acl.execute_command("RG.DUMPREGISTRATIONS")[0])["RegistrationData"])
    assert "does not exist" in data["lastError"]
