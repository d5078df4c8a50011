"""Safety: every register() and run() argument is validated (Python and guests, one set
of checks) with a clear error and nothing registered; unfetched results are bounded in
bytes (MaxResultsBytes); RG.WASMUPLOAD compiles and describes off the main thread, and
WasmMaxCallMillis has an upper bound."""
import threading
import time

import pytest
import redis

from conftest import (pyexecute, upload, guest_bytes, dump_regs, wait_until, pairs,
                      register_id)
from test_registrations_persist import restart, wait_link_up, wait_replica_caught_up


def registrations(c):
    return sorted(dump_regs(c))


def executions(c):
    return c.execute_command("RG.DUMPEXECUTIONS")


def guests(c):
    return sorted(pairs(g)["name"] for g in c.execute_command("RG.WASMLIST"))


@pytest.fixture
def one_registered(r):
    """A registration that must survive every refused one untouched."""
    register_id(r, "GB().register(prefix='keep:*')")
    return r


# ---------------------------------------------------------------------------- register()

BAD_REGISTER = [
    ("GB().register(prefix='a:*', keyTypes=['bogus'])", "unknown key type 'bogus'"),
    ("GB().register(prefix='a:*', keyTypes='hash')", "keyTypes must be a list of str"),
    ("GB().register(prefix='a:*', commands=['ping'])", "'ping' takes no key"),
    ("GB().register(prefix='a:*', commands=['blpop'])", "Can not override a command which are not allowed"),
    ("GB().register(prefix='a:*', commands=['nosuchcommand'])", "nosuchcommand"),
    ("GB().register(prefix='a:*', eventTypes=[''])", "eventTypes must not be empty"),
    ("GB().register(prefix='a:*', eventTypes=['set'] * 300)", "eventTypes has too many entries"),
    ("GB().register(prefix='x' * 2000)", "prefix is too long (2000 bytes, at most 1024)"),
    ("GB(desc='d' * 2000).register(prefix='a:*')", "desc is too long"),
    ("GB().register(prefix='a:*', readValue='yes')", "readValue must be a bool"),
    ("GB().register(prefix='a:*', mode='fast')", "unknown execution mode 'fast'"),
    ("GB().register(prefix='a:*', nope=1)", "Unknown arguments were given: nope"),
    ("GB('CommandReader').register(trigger='t' * (1 << 20))", "trigger is too long"),
    ("GB('CommandReader').register()", "no trigger or hook argument was given"),
    ("GB('CommandReader').register(trigger='t', hook='set')",
     "trigger argument can not be given with keyprefix or hook"),
    ("GB('CommandReader').register(trigger='t', keyprefix='k')",
     "trigger argument can not be given with keyprefix or hook"),
    ("GB('CommandReader').register(trigger=1)", "trigger must be a str"),
    ("GB('CommandReader').register(hook='multi')",
     "Can not override a command which are not allowed inside a script"),
    ("GB('CommandReader').register(hook='set', keyprefix='k' * 2000)", "keyprefix is too long"),
    ("GB('StreamReader').register(prefix='s', batch=2000000)",
     "batch must be between 1 and 1000000, got 2000000"),
    ("GB('StreamReader').register(prefix='s', batch=True)", "batch must be an int"),
    ("GB('StreamReader').register(prefix='s', duration=2**40)", "duration must be between 0 and"),
    ("GB('StreamReader').register(prefix='s', onFailedRetryInterval=2**40)",
     "onFailedRetryInterval must be between 0 and"),
    ("GB('StreamReader').register(prefix='s', onFailedPolicy='later')", "onFailedPolicy must be"),
    ("GB('TimeReader').register(interval=2**40)", "interval must be between 1 and"),
    ("GB('TimeReader').register(interval=0)", "interval"),
    ("GB().map(3).register(prefix='a:*')", "must be callable"),
    ("GB('NoSuchReader')", "reader does not exists"),
]


@pytest.mark.parametrize("code, message", BAD_REGISTER)
def test_bad_register_argument_is_refused_and_nothing_registered(one_registered, code, message):
    r = one_registered
    before = registrations(r)
    with pytest.raises(redis.ResponseError) as e:
        pyexecute(r, code)
    assert message in str(e.value), str(e.value)
    assert registrations(r) == before


def test_a_refused_register_undoes_the_earlier_ones_of_its_script(one_registered):
    r = one_registered
    before = registrations(r)
    with pytest.raises(redis.ResponseError, match="unknown key type"):
        pyexecute(r, "GB().register(prefix='b:*')\n"
                     "GB().register(prefix='c:*', keyTypes=['hash', 'bogus'])")
    assert registrations(r) == before


def test_limits_themselves_are_accepted(r):
    """The bounds are inclusive: exactly 1024 bytes, keyed commands, every key type."""
    register_id(r, "GB('CommandReader').register(trigger='t' * 1024)")
    register_id(r, "GB().register(prefix='p' * 1023 + '*', commands=['set', 'HSET'],"
                   " keyTypes=['string', 'hash', 'list', 'set', 'zset', 'stream', 'module'])")
    register_id(r, "GB('StreamReader').register(prefix='s', batch=1000000)")
    assert len(registrations(r)) == 3
    assert r.execute_command("RG.TRIGGER", "t" * 1024) == [str(["t" * 1024])]


# ---------------------------------------------------------------------------- run()

BAD_RUN = [
    ("GB('KeysOnlyReader').run(count=2000000)", "count must be between 1 and 1000000"),
    ("GB('KeysOnlyReader').run(count=0)", "count must be an int >= 1"),
    ("GB().run(mode='fast')", "unknown execution mode 'fast'"),
    ("GB().run(noScan='yes')", "noScan must be a bool"),
    ("GB().run(3)", "pattern must be a str"),
    ("GB('KeysOnlyReader').run(nope=1)", "Unknown arguments were given: nope"),
    ("GB('StreamReader').run('s', fromId=0)", "fromId must be a str"),
    ("GB('PythonReader').run('not a function')", "generator function"),
    ("GB('CommandReader').run()", "reader do not support run"),
    ("GB('TimeReader').run()", "reader do not support run"),
]


@pytest.mark.parametrize("code, message", BAD_RUN)
def test_bad_run_argument_is_refused_and_nothing_runs(r, code, message):
    before = executions(r)
    with pytest.raises(redis.ResponseError) as e:
        pyexecute(r, code)
    assert message in str(e.value), str(e.value)
    assert executions(r) == before


# ---------------------------------------------------------------------------- guests

@pytest.mark.parametrize("case, message", [
    ("keytypes", "unknown key type 'bogus'"),
    ("ping", "'ping' takes no key"),
    ("longtrigger", "trigger is too long (2000 bytes"),
    ("longdesc", "desc is too long (2000 bytes"),
])
def test_guest_registration_with_bad_argument_is_refused(one_registered, case, message):
    r = one_registered
    before = registrations(r)
    r.execute_command("RG.CONFIGSET", "faults_describe", case)
    try:
        with pytest.raises(redis.ResponseError) as e:
            upload(r, "bad", "faults")
        assert "registration 0" in str(e.value) and message in str(e.value), str(e.value)
        assert "bad" not in guests(r)
        assert registrations(r) == before
    finally:
        r.execute_command("RG.CONFIGSET", "faults_describe", "")


def test_guest_name_and_description_are_bounded(r):
    with pytest.raises(redis.ResponseError, match="guest name is too long"):
        upload(r, "g" * 2000, "faults")
    with pytest.raises(redis.ResponseError, match="DESCRIPTION is too long"):
        upload(r, "g", "faults", "DESCRIPTION", "d" * 2000)
    assert guests(r) == []


# ---------------------------------------------------------------------------- MaxResultsBytes

def run_unblocking(r, code):
    eid = pyexecute(r, code, "UNBLOCKING")
    wait_until(lambda: r.execute_command("RG.GETRESULTS", eid) if status(r, eid) == "done"
               else None, what="the run to finish")
    return eid


def status(r, eid):
    return pairs(pairs(r.execute_command("RG.GETEXECUTION", eid)[0])["execution_plan"])["status"]


def test_results_beyond_max_results_bytes_drop_the_oldest_first(r):
    assert r.execute_command("RG.CONFIGGET", "MaxResultsBytes") == [256 << 20]
    with r.pipeline(transaction=False) as p:
        for i in range(1000):
            p.set(f"k:{i}", i)
        p.execute()
    # each run keeps 1000 results of 100 characters: about 130 KB; room for two
    assert r.execute_command("RG.CONFIGSET", "MaxResultsBytes", 300_000) == ["OK"]
    try:
        code = "GB('KeysOnlyReader').map(lambda k: 'x' * 100).run('k:*')"
        ids = [run_unblocking(r, code) for _ in range(4)]
        for old in ids[:2]:
            for cmd in ("RG.GETRESULTS", "RG.GETEXECUTION"):
                with pytest.raises(redis.ResponseError) as e:
                    r.execute_command(cmd, old)
                assert "dropped to respect MaxResultsBytes" in str(e.value), str(e.value)
        for new in ids[2:]:
            results, errors = r.execute_command("RG.GETRESULTS", new)
            assert len(results) == 1000 and results[0] == "x" * 100 and errors == []
        # an id that never existed keeps 1.2's text alone
        with pytest.raises(redis.ResponseError, match="^execution plan does not exist$"):
            r.execute_command("RG.GETRESULTS", "0" * 40 + "-999999")
    finally:
        r.execute_command("RG.CONFIGSET", "MaxResultsBytes", 256 << 20)
    for eid in ids[2:]:
        r.execute_command("RG.DROPEXECUTION", eid)


def test_max_results_bytes_refuses_bad_values(r):
    reply = r.execute_command("RG.CONFIGSET", "MaxResultsBytes", "-1", "MaxResultsBytes", "x")
    assert all(isinstance(e, redis.ResponseError) for e in reply), reply
    assert r.execute_command("RG.CONFIGGET", "MaxResultsBytes") == [256 << 20]


# ---------------------------------------------------------------------------- uploads

def test_wasm_max_call_millis_is_bounded(r):
    reply = r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "10001")
    assert isinstance(reply[0], redis.ResponseError)
    assert "WasmMaxCallMillis must be between 1 and 10000" in str(reply[0])
    assert r.execute_command("RG.CONFIGGET", "WasmMaxCallMillis") == [500]


def test_spinning_describe_runs_off_the_main_thread(server, r):
    """With WasmMaxCallMillis at its maximum, a describe that never ends holds only its
    own client: other clients are answered within 100 ms the whole time."""
    assert r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "10000",
                             "faults_describe", "spin") == ["OK", "OK - value was saved in "
                                                            "extra config dictionary"]
    outcome = {}

    def uploading():
        c = server.client()
        t0 = time.monotonic()
        try:
            outcome["reply"] = upload(c, "spinner", "faults")
        except redis.ResponseError as e:
            outcome["error"] = str(e)
        outcome["took"] = time.monotonic() - t0

    t = threading.Thread(target=uploading)
    try:
        t.start()
        wait_until(lambda: r.info("clients")["blocked_clients"] >= 1, timeout=5,
                   what="the uploading client to be blocked")
        worst = 0.0
        pings = 0
        while t.is_alive():
            t0 = time.monotonic()
            assert r.ping()
            worst = max(worst, time.monotonic() - t0)
            pings += 1
            time.sleep(0.01)
        t.join()
    finally:
        r.execute_command("RG.CONFIGSET", "WasmMaxCallMillis", "500", "faults_describe", "")
    assert "time budget of 10000 ms" in outcome.get("error", ""), outcome
    assert outcome["took"] >= 9.5, outcome
    assert pings > 100 and worst < 0.1, (pings, worst)
    assert "spinner" not in guests(r)
    # the helper thread is free again: a normal upload works
    assert upload(r, "faults") == "OK"
    assert r.execute_command("RG.WASMRUN", "faults", "fine")[1] == []


def test_upload_inside_multi_is_refused(r):
    with r.pipeline(transaction=True) as p:
        p.execute_command("RG.WASMUPLOAD", "g", guest_bytes("faults"))
        with pytest.raises(redis.ResponseError, match="can not run inside MULTI"):
            p.execute()
    assert guests(r) == []


def test_upload_errors_and_duplicates_answer_the_client(server, r):
    with pytest.raises(redis.ResponseError, match="not a WebAssembly component"):
        r.execute_command("RG.WASMUPLOAD", "junk", b"hello")
    assert upload(r, "faults") == "OK"
    with pytest.raises(redis.ResponseError, match="already exists"):
        upload(r, "faults")
    # two uploads of one name at once: one wins, the other is told so
    replies = []

    def up():
        try:
            replies.append(upload(server.client(), "twice", "genres"))
        except redis.ResponseError as e:
            replies.append(str(e))

    threads = [threading.Thread(target=up) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert replies.count("OK") == 1, replies
    assert sum("already exists" in x for x in replies) == 1, replies
    assert guests(r) == ["faults", "twice"]


def test_upload_is_replicated_and_persisted(fresh_server):
    from test_wasm_persist import listing
    p = fresh_server()
    pc = p.client()
    rep = fresh_server(extra_args=["--replicaof", "127.0.0.1", str(p.port)])
    rc = rep.client()
    wait_link_up(rc)
    assert upload(pc, "genres") == "OK"
    assert upload(pc, "kitchen", None, "DESCRIPTION", "kit") == "OK"
    wait_replica_caught_up(pc, rc)
    assert listing(rc) == listing(pc) and len(listing(pc)) == 2
    assert sorted(dump_regs(rc)) == sorted(dump_regs(pc))
    before = listing(pc)
    pc.save()
    pc = restart(p)
    assert listing(pc) == before
    pc.hset("movie:1", "genres", "Drama")
    assert pc.execute_command("RG.WASMRUN", "genres", "count") == [
        [["key", "Drama", "value", 1]], []]
