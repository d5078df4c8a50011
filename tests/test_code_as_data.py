"""Code as data: RG.DUMPCODE, RG.RESTORECODE [APPEND|REPLACE|FLUSH], RG.FLUSHCODE.

docs/commands.md (the three sections) and docs/roles.md (admin commands): a dump holds
every Python session and Wasm guest with their registration ids, owners, descriptions and
paused state; a restore brings them back elsewhere with the same ids, all or nothing; a
flush removes every registration. Replicas, the AOF and every master of a cluster get them.

Every test has servers of its own (fresh_server), started as in test_registrations_persist.
"""
import pytest
import redis

from conftest import RedisServer, dump_regs, pairs, pyexecute, shard_tags, upload, wait_until
from test_registrations_persist import counter, restart, wait_link_up, wait_replica_caught_up
# `server`: docs/roles.md's users on Redis 7.0 and on Valkey 8.1 (a fixture).
from test_roles import as_user, server  # noqa: F401


# A sync KeysReader session owned by alice: its second write is outside alice's keys, so
# its error names the owner it runs as.
KEYS_CODE = """
def step(x):
    execute('incr', 'cnt:k')
    execute('set', 'nope:' + x['key'], '1')
GB(desc='keys desc').foreach(step).register(prefix='k:*', mode='sync')
"""
STREAM_CODE = ("GB('StreamReader', desc='stream desc')"
               ".foreach(lambda x: execute('incr', 'cnt:s')).register(prefix='s:*')")
ALICE = ["ACL", "SETUSER", "alice", "on", ">pw", "~k:*", "~cnt:*", "+@all"]


# ---------------------------------------------------------------------------- helpers

def binary(s):
    return s.client(decode_responses=False)


def dump(s):
    payload = binary(s).execute_command("RG.DUMPCODE")
    assert isinstance(payload, bytes) and payload.startswith(b"GEARSCDE"), payload[:16]
    return payload


def restore(s, payload, *mode):
    return s.client().execute_command("RG.RESTORECODE", payload, *mode)


def code_state(c):
    """(registrations, sessions, guests) as the module shows them, statistics left out."""
    regs = {rid: (d["reader"], d["desc"], d["data"]["mode"], d["args"], d["PD"],
                  d["data"].get("status"))
            for rid, d in dump_regs(c).items()}
    sessions = {d["ID"]: (d["sessionDescription"], sorted(d["registrations"]))
                for d in map(pairs, c.execute_command("RG.PYDUMPSESSIONS"))}
    guests = {d["name"]: (d["hash"], d["description"], d["registrations"])
              for d in map(pairs, c.execute_command("RG.WASMLIST"))}
    return regs, sessions, guests


def without_status(state):
    regs, sessions, guests = state
    return {rid: r[:-1] for rid, r in regs.items()}, sessions, guests


def is_empty(c):
    return code_state(c) == ({}, {}, {})


def make_code(s):
    """On server s: a session of alice's (keys), a stream session (paused) and the all_keys
    guest. Returns {'keys': id, 'stream': id, 'guest': id}."""
    c = s.client()
    c.execute_command(*ALICE)
    alice = s.client(username="alice", password="pw")
    assert pyexecute(alice, KEYS_CODE, "ID", "keys", "DESCRIPTION", "keys session") == "OK"
    assert pyexecute(c, STREAM_CODE, "ID", "stream") == "OK"
    assert upload(c, "all_keys", None, "DESCRIPTION", "every key") == "OK"
    ids = {}
    for rid, d in dump_regs(c).items():
        ids[{"KeysReader": "keys" if d["desc"] == "keys desc" else "guest",
             "StreamReader": "stream"}[d["reader"]]] = rid
    assert len(ids) == 3, dump_regs(c)
    assert c.execute_command("RG.PAUSEREGISTRATIONS", ids["stream"]) == "OK"
    return ids


def dumped_and_target(fresh_server):
    """make_code on one server, dumped; and a second server that has alice. Returns
    (ids, state, payload, second server, its client)."""
    s = fresh_server()
    ids = make_code(s)
    state = code_state(s.client())
    payload = dump(s)
    other = fresh_server()
    oc = other.client()
    oc.execute_command(*ALICE)
    return ids, state, payload, other, oc


def check_code(c, ids, state, n=1, paused=True):
    """The code of make_code is there with `state`, and fires (the n-th time)."""
    assert code_state(c) == state
    regs = dump_regs(c)
    assert regs[ids["stream"]]["data"]["status"] == ("PAUSED" if paused else "OK")
    c.set(f"k:{n}", "v")
    assert c.get("cnt:k") == str(n)
    assert c.get(f"nope:k:{n}") is None
    assert "'alice'" in dump_regs(c)[ids["keys"]]["data"]["lastError"]
    wait_until(lambda: c.sismember("all_keys", f"k:{n}"), what="the guest's registration")
    if paused:
        assert c.execute_command("RG.UNPAUSEREGISTRATIONS", ids["stream"]) == "OK"
    c.xadd("s:1", {"f": n})
    wait_until(lambda: c.get("cnt:s") == str(n), what="the stream registration")


def fires_nothing(c):
    c.set("k:gone", "v")
    c.xadd("s:gone", {"f": 1})
    c.set("k:gone2", "v")  # after the stream's message: a stream run would be done
    assert c.get("cnt:k") is None and c.get("cnt:s") is None
    assert not c.exists("all_keys")


# ---------------------------------------------------------------------------- dump, flush, restore

def test_dump_flush_and_restore_here_and_on_a_fresh_server(fresh_server):
    s = fresh_server()
    c = s.client()
    ids = make_code(s)
    state = code_state(c)
    payload = dump(s)
    assert dump(s) == payload  # nothing in it changes between two dumps

    assert c.execute_command("RG.FLUSHCODE") == "OK"
    assert is_empty(c)
    assert "code flushed: 3 registrations and 1 guests removed" in s.log()
    c.flushall()
    fires_nothing(c)
    empty = dump(s)
    assert empty != payload

    # Elsewhere: alice must exist there first.
    other = fresh_server()
    oc = other.client()
    with pytest.raises(redis.ResponseError, match="ACL user 'alice', who does not exist"):
        restore(other, payload)
    assert is_empty(oc)
    oc.execute_command(*ALICE)
    assert restore(other, payload) == "OK"
    assert "code restored (APPEND): 3 sessions and guests, 3 registrations" in other.log()
    check_code(oc, ids, state)
    # New registrations there do not take a restored id.
    assert pyexecute(oc, "GB().register(prefix='new:*')") == "OK"
    assert len(set(dump_regs(oc)) - set(ids.values())) == 1

    # Here again, into the flushed server.
    c.flushall()
    assert restore(s, payload) == "OK"
    check_code(c, ids, state)
    # An empty dump restored adds nothing.
    assert restore(s, empty) == "OK"
    assert without_status(code_state(c)) == without_status(state)
    assert s.alive() and other.alive()


def test_append_refuses_the_whole_payload_on_any_clash(fresh_server):
    ids, state, payload, other, oc = dumped_and_target(fresh_server)
    # A server whose one registration has an id of the dump: nothing of it is added.
    assert pyexecute(oc, counter("o:*", "cnt:o"), "ID", "other") == "OK"
    before = code_state(oc)
    (clash,) = before[0]
    assert clash == ids["keys"]
    with pytest.raises(redis.ResponseError, match=f"registration {clash} already exist"):
        restore(other, payload)
    assert code_state(oc) == before
    oc.set("o:1", 1)
    oc.set("k:1", 1)
    assert oc.get("cnt:o") == "1" and oc.get("cnt:k") is None

    # Restored once, all of it clashes the second time.
    assert oc.execute_command("RG.UNREGISTER", clash) == "OK"
    assert restore(other, payload) == "OK"
    assert code_state(oc) == state
    with pytest.raises(redis.ResponseError) as e:
        restore(other, payload, "APPEND")
    text = str(e.value)
    assert "nothing was restored" in text and "use REPLACE or FLUSH" in text
    for what in ["session 'keys'", "session 'stream'", "guest 'all_keys'"] + [
            f"registration {rid}" for rid in ids.values()]:
        assert what in text, text
    assert code_state(oc) == state


def test_replace_replaces_what_clashes_and_keeps_the_rest(fresh_server):
    ids, state, payload, other, oc = dumped_and_target(fresh_server)
    # "other" holds the dump's first id, a guest of the same name (another description)
    # its second; "kept" gets an id the dump does not hold; "genres" clashes with nothing.
    assert pyexecute(oc, counter("o:*", "cnt:o"), "ID", "other") == "OK"
    assert upload(oc, "all_keys", None, "DESCRIPTION", "old") == "OK"
    assert pyexecute(oc, "GB().register(prefix='tmp:*')", "ID", "tmp") == "OK"
    (tmp,) = code_state(oc)[1]["tmp"][1]
    assert oc.execute_command("RG.UNREGISTER", tmp) == "OK"
    assert pyexecute(oc, counter("p:*", "cnt:p"), "ID", "kept") == "OK"
    assert not set(code_state(oc)[1]["kept"][1]) & set(ids.values())
    assert upload(oc, "genres") == "OK"
    assert restore(other, payload, "replace") == "OK"
    regs, sessions, guests = code_state(oc)
    assert set(guests) == {"all_keys", "genres"}
    assert guests["all_keys"] == state[2]["all_keys"]
    assert set(ids.values()) <= set(regs)
    # "other" lost its registration (its id is the dump's now) and so its session;
    # "kept" (a later id the dump does not hold) stays.
    assert "other" not in sessions and "kept" in sessions
    assert sessions["keys"] == state[1]["keys"]
    oc.set("o:1", 1)
    oc.set("p:1", 1)
    assert oc.get("cnt:o") is None and oc.get("cnt:p") == "1"
    oc.delete("p:1", "cnt:p")
    check_code(oc, ids, code_state(oc))


def test_flush_mode_leaves_only_the_payload(fresh_server):
    ids, state, payload, other, oc = dumped_and_target(fresh_server)
    assert pyexecute(oc, "GB().register(prefix='o:*')", "ID", "one") == "OK"
    assert pyexecute(oc, "GB().register(prefix='o2:*')", "ID", "two") == "OK"
    assert pyexecute(oc, "GB().register(prefix='o3:*')", "ID", "three") == "OK"
    assert pyexecute(oc, "GB().register(prefix='o4:*')", "ID", "four") == "OK"
    assert upload(oc, "genres") == "OK"
    assert restore(other, payload, "FLUSH") == "OK"
    assert code_state(oc) == state
    check_code(oc, ids, state)
    # Again, into a server that holds exactly the payload's code: the same again.
    oc.flushall()
    assert oc.execute_command("RG.PAUSEREGISTRATIONS", ids["stream"]) == "OK"
    assert restore(other, payload, "FLUSH") == "OK"
    check_code(oc, ids, state)


# ---------------------------------------------------------------------------- refusals

def corrupt(payload):
    middle = len(payload) // 2
    return payload[:middle] + bytes([payload[middle] ^ 0x20]) + payload[middle + 1:]


def newer(payload):
    return payload[:8] + (2).to_bytes(2, "big") + payload[10:]


@pytest.mark.parametrize("damage, message", [
    (corrupt, "truncated or corrupt \\(its checksum does not match\\)"),
    (lambda p: p[:len(p) - 40], "truncated or corrupt"),
    (lambda p: p[:12], "the payload is truncated"),
    (newer, "format version 2; this module reads versions 1 to 1"),
    (lambda p: b"\x00asm\x01\x00\x00\x00", "not a dump of RG.DUMPCODE"),
    (lambda p: b"", "not a dump of RG.DUMPCODE"),
])
def test_bad_payloads_are_refused_and_change_nothing(fresh_server, damage, message):
    s = fresh_server()
    make_code(s)
    payload = dump(s)
    c = s.client()
    assert c.execute_command("RG.FLUSHCODE") == "OK"
    with pytest.raises(redis.ResponseError, match=message):
        restore(s, damage(payload))
    assert is_empty(c)
    assert restore(s, payload) == "OK"
    assert len(dump_regs(c)) == 3


@pytest.mark.parametrize("args, message", [
    (["RG.DUMPCODE", "x"], "wrong number of arguments"),
    (["RG.FLUSHCODE", "ASYNC"], "wrong number of arguments"),
    (["RG.RESTORECODE"], "wrong number of arguments"),
    (["RG.RESTORECODE", "p", "APPEND", "x"], "wrong number of arguments"),
    (["RG.RESTORECODE", "p", "BOGUS"], "Unknown arguments were given: BOGUS"),
])
def test_bad_arguments(fresh_server, args, message):
    c = fresh_server().client()
    with pytest.raises(redis.ResponseError, match=message):
        c.execute_command(*args)


def test_refused_inside_multi_and_where_python_is_off(fresh_server):
    s = fresh_server()
    make_code(s)
    payload = dump(s)
    c = s.client()
    assert c.execute_command("RG.FLUSHCODE") == "OK"
    p = c.pipeline(transaction=True)
    p.execute_command("RG.RESTORECODE", payload)
    (reply,) = p.execute(raise_on_error=False)
    assert isinstance(reply, redis.ResponseError) and "inside MULTI" in str(reply), reply
    with pytest.raises(redis.ResponseError, match="not allowed from script"):
        c.eval("return redis.call('RG.FLUSHCODE')", 0)
    assert is_empty(c)

    off = fresh_server(module_args=["PythonEnabled", "0"])
    oc = off.client()
    oc.execute_command(*ALICE)
    with pytest.raises(redis.ResponseError, match="holds Python sessions and Python is disabled"):
        restore(off, payload)
    assert is_empty(oc)
    # A payload of guests alone is restored there.
    assert upload(c, "all_keys") == "OK"
    assert restore(off, dump(s)) == "OK"
    assert list(code_state(oc)[2]) == ["all_keys"]


def test_only_admins(server):
    s = server
    c = s.client()
    assert upload(c, "genres") == "OK"
    payload = dump(s)
    for role in ("reader", "runner", "deployer"):
        user = as_user(s, role)
        for command in (("RG.DUMPCODE",), ("RG.RESTORECODE", payload, "REPLACE"),
                        ("RG.FLUSHCODE",)):
            with pytest.raises(redis.exceptions.NoPermissionError):
                user.execute_command(*command)
    assert list(code_state(c)[2]) == ["genres"]
    boss = as_user(s, "admin")
    assert boss.execute_command("RG.FLUSHCODE") == "OK"
    assert boss.execute_command("RG.RESTORECODE", payload) == "OK"
    assert list(code_state(c)[2]) == ["genres"]
    if "rg.dumpcode" in c.execute_command("ACL", "CAT", "admin"):
        for name in ("rg.dumpcode", "rg.restorecode", "rg.flushcode"):
            assert name in c.execute_command("ACL", "CAT", "dangerous"), name
            assert name in c.execute_command("ACL", "CAT", "gears"), name
    assert c.execute_command("RG.FLUSHCODE") == "OK"


# ---------------------------------------------------------------------------- replication, persistence, cluster

def test_a_replica_gets_restores_and_flushes(fresh_server):
    source = fresh_server()
    ids = make_code(source)
    payload = dump(source)

    p = fresh_server(extra_args=["--repl-diskless-sync-delay", "0"])
    pc = p.client()
    pc.execute_command(*ALICE)
    rep = fresh_server(extra_args=["--replicaof", "127.0.0.1", str(p.port)])
    rc = rep.client()
    wait_link_up(rc)
    rc.execute_command(*ALICE)  # ACL users are not replicated
    assert restore(p, payload) == "OK"
    wait_replica_caught_up(pc, rc)
    assert code_state(rc) == code_state(pc)
    assert set(dump_regs(rc)) == set(ids.values())
    with pytest.raises(redis.exceptions.ReadOnlyError):
        rc.execute_command("RG.FLUSHCODE")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        rc.execute_command("RG.RESTORECODE", payload, "FLUSH")

    assert pc.execute_command("RG.FLUSHCODE") == "OK"
    wait_replica_caught_up(pc, rc)
    assert is_empty(rc)

    # REPLACE over a session of the same id, then FLUSH: the replica follows each.
    assert pyexecute(pc, "GB().register(prefix='x:*')", "ID", "keys") == "OK"
    assert restore(p, payload, "REPLACE") == "OK"
    wait_replica_caught_up(pc, rc)
    assert code_state(rc) == code_state(pc)
    assert code_state(rc)[1]["keys"] == ("keys session", [ids["keys"]])
    assert pyexecute(pc, "GB().register(prefix='y:*')", "ID", "y") == "OK"
    assert restore(p, payload, "FLUSH") == "OK"
    wait_replica_caught_up(pc, rc)
    assert code_state(rc) == code_state(pc)
    assert set(code_state(rc)[1]) == {"keys", "stream"}
    # Promoted, it fires.
    assert rc.execute_command("REPLICAOF", "NO", "ONE") in ("OK", True)
    rc.flushall()
    check_code(rc, ids, code_state(pc))
    assert p.alive() and rep.alive()


@pytest.mark.parametrize("how", ["rdb", "aof"])
def test_a_restore_survives_a_restart(fresh_server, how):
    source = fresh_server()
    ids = make_code(source)
    payload = dump(source)
    args = ["--appendonly", "yes"] if how == "aof" else []
    s = fresh_server(extra_args=args)
    c = s.client()
    c.execute_command(*ALICE)
    assert pyexecute(c, "GB().register(prefix='gone:*')", "ID", "gone") == "OK"
    assert restore(s, payload, "FLUSH") == "OK"
    state = code_state(c)
    if how == "rdb":
        assert c.save()
    c.close()
    c = restart(s)
    c.execute_command(*ALICE)  # the ACL user is no part of the dump nor the RDB
    if how == "aof":
        # The AOF replays the parts of the restore, the pause included.
        assert code_state(c) == state
        check_code(c, ids, state)
    else:
        # The RDB keeps no pause (as for any registration).
        assert without_status(code_state(c)) == without_status(state)
        check_code(c, ids, code_state(c), paused=False)
    assert s.alive()


CLUSTER_CODE = ("GB().foreach(lambda x: execute('incr', 'seen{%s}' % hashtag()))"
                ".register(prefix='k:*', mode='sync')")


def test_a_restore_on_one_master_shows_on_all(cluster3):
    c = cluster3
    m0, m1, m2 = (m.client() for m in c.masters)
    assert pyexecute(m0, CLUSTER_CODE, "ID", "counting", "DESCRIPTION", "d") == "OK"
    assert upload(m0, "all_keys") == "OK"
    state = code_state(m0)
    assert all(code_state(m) == state for m in (m1, m2))
    payload = binary(c.masters[0]).execute_command("RG.DUMPCODE")

    assert m1.execute_command("RG.FLUSHCODE") == "OK"
    assert all(is_empty(m) for m in (m0, m1, m2))
    assert m2.execute_command("RG.RESTORECODE", payload) == "OK"
    # Every master has it when the client got its answer.
    assert all(code_state(m) == state for m in (m0, m1, m2))
    client = c.client()
    for i in range(30):
        client.set(f"k:{i}", "v")
    tags = shard_tags(c)
    seen = [int(m.client().get("seen{%s}" % tags[m.port]) or 0) for m in c.masters]
    assert sum(seen) == 30 and all(seen), seen
    owner = c.node_of("all_keys").client()
    wait_until(lambda: owner.scard("all_keys") >= 1, what="the restored guest to fire")

    # A restore one master refuses (its owner is unknown there) is made nowhere.
    assert m0.execute_command("RG.FLUSHCODE") == "OK"
    m0.execute_command(*ALICE)
    alices = alice_payload()
    with pytest.raises(redis.ResponseError, match="ACL user 'alice'"):
        # Refused at once on m1: alice is not there.
        m1.execute_command("RG.RESTORECODE", alices)
    assert all(is_empty(m) for m in (m0, m1, m2))
    with pytest.raises(redis.ResponseError) as e:
        m0.execute_command("RG.RESTORECODE", alices)
    assert "nothing was changed" in str(e.value) and "alice" in str(e.value)
    assert all(is_empty(m) for m in (m0, m1, m2))
    assert c.alive()


def alice_payload():
    """A payload holding a session of alice's, made on a standalone server."""
    s = RedisServer().start()
    try:
        s.client().execute_command(*ALICE)
        sc = s.client(username="alice", password="pw")
        assert pyexecute(sc, "GB().register(prefix='a:*')", "ID", "alices") == "OK"
        return dump(s)
    finally:
        s.stop()
