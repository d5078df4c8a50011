"""Black-box tests of registration sessions, persistence and replication.

SPEC.md "Commands" (RG.PYEXECUTE ID / UPGRADE / REPLACE_WITH, RG.PYDUMPSESSIONS,
RG.DUMPREGISTRATIONS, RG.UNREGISTER), "Readers" (never fires on replicas or while
loading), PITFALLS.md (DEBUG RELOAD needs --enable-debug-command yes; module aux data
reaches an AOF rewrite only with aof-use-rdb-preamble yes).

Every test has servers of its own (fresh_server). A restart terminates the process and
starts it again on the same port and directory (RedisServer.stop() would delete the
directory with the RDB/AOF in it). Nothing depends on timing except polling with a deadline.
"""
import pytest

from conftest import pyexecute, wait_until, pairs, dump_regs, register_id

ZERO = "0" * 40

SESSION_FIELDS = ["ID", "sessionDescription", "refCount", "linked", "dead",
                  "requirementInstallationNeeded", "requirements", "registrations"]


# ---------------------------------------------------------------------------- helpers

def reg_summary(c):
    """What must survive a reload: id -> (reader, desc, mode, args, PD)."""
    return {rid: (d["reader"], d["desc"], d["data"]["mode"], d["data"]["args"], d["PD"])
            for rid, d in dump_regs(c).items()}


def sessions(c):
    out = {}
    for entry in c.execute_command("RG.PYDUMPSESSIONS"):
        assert entry[0::2] == SESSION_FIELDS, entry
        d = pairs(entry)
        assert d["ID"] not in out, entry
        out[d["ID"]] = d
    return out


def session_regs(c):
    return {sid: sorted(d["registrations"]) for sid, d in sessions(c).items()}


def counter(prefix, cnt, mode="sync", extra=""):
    """A registration on `prefix` that INCRs `cnt` (a key outside the prefix)."""
    return (f"GB().foreach(lambda x: execute('incr', '{cnt}'))"
            f".register(prefix='{prefix}', mode='{mode}'{extra})")


def restart(s):
    """Terminate redis-server and start it again on the same port and directory."""
    s.proc.terminate()
    s.proc.wait(timeout=20)
    s.start()
    return s.client()


def info(c, section):
    return c.info(section)


def wait_aof_rewrite(c):
    def done():
        i = c.info("persistence")
        return (i["aof_rewrite_in_progress"] == 0 and i["aof_rewrite_scheduled"] == 0
                and i["aof_last_bgrewrite_status"] == "ok")
    wait_until(done, timeout=20, what="BGREWRITEAOF to finish")


def wait_link_up(replica):
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
               timeout=20, what="master_link_status:up")


def wait_replica_caught_up(primary, replica):
    """Poll until the replica processed everything the primary sent so far."""
    target = primary.info("replication")["master_repl_offset"]
    wait_until(lambda: replica.info("replication").get("slave_repl_offset", -1) >= target,
               timeout=20, what="the replica to reach the primary's offset")


def log_lines(s, marker):
    return s.log().count(marker)


# ---------------------------------------------------------------------------- sessions

def test_session_id_and_description_in_pydumpsessions(fresh_server):
    s = fresh_server()
    c = s.client()
    rid = register_id(c, counter("ss:*", "cnt:ss"), "ID", "x", "DESCRIPTION", "my session")
    sess = sessions(c)
    assert "x" in sess
    d = sess["x"]
    assert d["sessionDescription"] == "my session"
    assert d["registrations"] == [rid]
    assert d["linked"] == "primary" and d["dead"] == "false"
    assert d["requirementInstallationNeeded"] == 0 and d["requirements"] == []
    assert d["refCount"] >= 1
    # a script without ID gets a generated session id, unique per script
    rid2 = register_id(c, counter("ss2:*", "cnt:ss2"))
    rid3 = register_id(c, counter("ss3:*", "cnt:ss3"))
    others = {sid: regs for sid, regs in session_regs(c).items() if sid != "x"}
    assert sorted(others.values()) == sorted([[rid2], [rid3]])
    c.set("ss:1", 1)
    assert c.get("cnt:ss") == "1"


def test_duplicate_session_id_refused(fresh_server):
    s = fresh_server()
    c = s.client()
    rid = register_id(c, counter("dup:*", "cnt:dup"), "ID", "x")
    with pytest.raises(Exception) as e:
        pyexecute(c, counter("dup2:*", "cnt:dup2"), "ID", "x")
    assert "Session x already exists" in str(e.value)
    assert list(dump_regs(c)) == [rid]
    assert session_regs(c)["x"] == [rid]
    c.set("dup2:1", 1)
    assert c.get("cnt:dup2") is None
    c.set("dup:1", 1)
    assert c.get("cnt:dup") == "1"


def test_session_disappears_after_last_unregister(fresh_server):
    s = fresh_server()
    c = s.client()
    code = counter("two:a:*", "cnt:twoa") + "\n" + counter("two:b:*", "cnt:twob")
    assert pyexecute(c, code, "ID", "x") == "OK"
    regs = sorted(dump_regs(c))
    assert len(regs) == 2
    assert session_regs(c) == {"x": regs}
    assert c.execute_command("RG.UNREGISTER", regs[0]) == "OK"
    assert session_regs(c) == {"x": [regs[1]]}
    assert c.execute_command("RG.UNREGISTER", regs[1]) == "OK"
    assert "x" not in sessions(c)
    # the id is free again
    rid = register_id(c, counter("two:c:*", "cnt:twoc"), "ID", "x")
    assert session_regs(c) == {"x": [rid]}


def test_session_upgrade_replaces_registrations(fresh_server):
    s = fresh_server()
    c = s.client()
    code = counter("up:*", "cnt:old") + "\n" + counter("up2:*", "cnt:old2", mode="async")
    assert pyexecute(c, code, "ID", "x") == "OK"
    old = set(dump_regs(c))
    assert len(old) == 2
    c.set("up:0", 1)
    assert c.get("cnt:old") == "1"
    new = register_id(c, counter("up:*", "cnt:new"), "ID", "x", "UPGRADE")
    assert new not in old
    assert set(dump_regs(c)) == {new}
    assert session_regs(c) == {"x": [new]}
    c.set("up:1", 1)
    c.set("up2:1", 1)
    assert c.get("cnt:new") == "1"
    assert c.get("cnt:old") == "1"
    assert dump_regs(c)[new]["data"]["numTriggered"] == 1
    # still refused without UPGRADE
    with pytest.raises(Exception) as e:
        pyexecute(c, counter("up:*", "cnt:new3"), "ID", "x")
    assert "Session x already exists" in str(e.value)
    # UPGRADE of a session that does not exist just creates it
    other = register_id(c, counter("upn:*", "cnt:upn"), "ID", "fresh", "UPGRADE")
    assert session_regs(c)["fresh"] == [other]
    assert c.get("cnt:old2") is None


def test_failed_upgrade_keeps_old_registrations(fresh_server):
    s = fresh_server()
    c = s.client()
    rid = register_id(c, counter("fu:*", "cnt:fu"), "ID", "x")
    bad = counter("fu:*", "cnt:fubad") + "\nraise Exception('upgrade fails')"
    with pytest.raises(Exception) as e:
        pyexecute(c, bad, "ID", "x", "UPGRADE")
    assert "upgrade fails" in str(e.value)
    assert list(dump_regs(c)) == [rid]
    assert session_regs(c) == {"x": [rid]}
    c.set("fu:1", 1)
    assert c.get("cnt:fu") == "1"
    assert c.get("cnt:fubad") is None


def test_replace_with_replaces_other_session(fresh_server):
    s = fresh_server()
    c = s.client()
    old = register_id(c, counter("rw:*", "cnt:rwold"), "ID", "y")
    keep = register_id(c, counter("rk:*", "cnt:rk"), "ID", "k")
    new = register_id(c, counter("rw:*", "cnt:rwnew"), "ID", "z", "REPLACE_WITH", "y")
    assert set(dump_regs(c)) == {new, keep}
    sess = session_regs(c)
    assert sess.get("z") == [new]
    assert "y" not in sess
    assert sess["k"] == [keep]
    c.set("rw:1", 1)
    assert c.get("cnt:rwnew") == "1"
    assert c.get("cnt:rwold") is None
    assert old not in dump_regs(c)


# ---------------------------------------------------------------------------- persistence

SIDE_EFFECT_SCRIPT = """
GB().foreach(lambda x: execute('incr', 'cnt:se')).register(prefix='se:*', mode='sync')
execute('incr', 'sideeffect')
GB('ShardsIDReader').foreach(lambda x: execute('incr', 'runeffect')).run()
"""


def make_registrations(c):
    """Three registrations in two sessions, with every reader argument set somewhere."""
    a = register_id(c, "GB(desc='persist sync').foreach(lambda x: log('PFIRED ' + x['key']))"
                       ".foreach(lambda x: execute('incr', 'cnt:pa'))"
                       ".register(prefix='pa:*', mode='sync')", "ID", "persist")
    b = register_id(c, "GB().foreach(lambda x: execute('incr', 'cnt:pb'))"
                       ".register(prefix='pb:k', eventTypes=['set', 'hset'],"
                       " keyTypes=['string', 'hash'], readValue=False)")
    reply = pyexecute(c, SIDE_EFFECT_SCRIPT, "ID", "effects")
    assert isinstance(reply, list) and reply[1] == [], reply
    assert c.get("sideeffect") == "1" and c.get("runeffect") == "1"
    # the side effects must not be replayed: delete them so a replay would recreate them
    c.delete("sideeffect", "runeffect")
    return a, b


def check_registrations_work(c, a, b, before_a=0, before_b=0, before_se=0):
    c.set("pa:x", 1)
    assert c.get("cnt:pa") == str(before_a + 1)
    c.set("se:x", 1)
    assert c.get("cnt:se") == str(before_se + 1)
    c.set("pb:k", 1)
    c.set("pb:other", 1)
    wait_until(lambda: c.get("cnt:pb") == str(before_b + 1), what="the async registration")
    assert c.get("sideeffect") is None
    assert c.get("runeffect") is None
    regs = dump_regs(c)
    assert regs[a]["data"]["numTriggered"] >= 1
    assert regs[b]["data"]["numTriggered"] >= 1


def test_save_and_restart(fresh_server):
    s = fresh_server()
    c = s.client()
    a, b = make_registrations(c)
    for i in range(20):
        c.set(f"pa:{i}", i)  # keys that will be loaded from the RDB
    assert c.get("cnt:pa") == "20"
    summary = reg_summary(c)
    sess = session_regs(c)
    assert len(summary) == 3 and a in summary and b in summary
    fired_before = log_lines(s, "PFIRED ")
    assert fired_before == 20
    assert c.save()
    c.close()

    c = restart(s)
    assert reg_summary(c) == summary  # same ids, readers, desc, modes, args, plans
    assert session_regs(c) == sess
    assert summary[a][1] == "persist sync"
    b_args = pairs(summary[b][3])
    assert b_args["regex"] == "pb:k"
    assert b_args["eventTypes"] == ["set", "hset"]
    assert b_args["keyTypes"] == ["string", "hash"]
    assert b_args["readValue"] == 0
    assert summary[b][2] == "async" and summary[a][2] == "sync"
    # loading the keys fired nothing
    assert log_lines(s, "PFIRED ") == fired_before
    assert c.get("cnt:pa") == "20"
    assert c.dbsize() == 21 + 0  # 20 pa:* and cnt:pa
    assert c.get("sideeffect") is None and c.get("runeffect") is None
    check_registrations_work(c, a, b, before_a=20)
    assert log_lines(s, "PFIRED ") == fired_before + 1
    # the session id is still taken; new registrations get new ids
    with pytest.raises(Exception) as e:
        pyexecute(c, counter("zz:*", "cnt:zz"), "ID", "persist")
    assert "Session persist already exists" in str(e.value)
    new = register_id(c, counter("zz:*", "cnt:zz"))
    assert new not in summary
    # the restored session can be upgraded like before
    up = register_id(c, counter("pa:*", "cnt:paup"), "ID", "persist", "UPGRADE")
    assert a not in dump_regs(c) and up in dump_regs(c)
    c.set("pa:y", 1)
    assert c.get("cnt:paup") == "1"
    assert c.get("cnt:pa") == "21"
    assert s.alive()


def test_save_and_restart_twice_not_doubled(fresh_server):
    s = fresh_server()
    c = s.client()
    a, b = make_registrations(c)
    summary = reg_summary(c)
    for _ in range(2):
        assert c.save()
        c.close()
        c = restart(s)
        assert reg_summary(c) == summary
    check_registrations_work(c, a, b)


GLOBALS_SCRIPT = """
import json
PREFIX = 'val-' + str(40 + 2)
def helper(k):
    return PREFIX + ':' + json.dumps({'k': k}, sort_keys=True)
def step(x):
    execute('set', 'out:' + x['key'], helper(x['key']))
GB().foreach(step).register(prefix='gl:*', mode='sync')
"""


@pytest.mark.parametrize("how", ["save_restart", "debug_reload"])
def test_step_globals_and_helpers_survive(fresh_server, how):
    s = fresh_server(extra_args=["--enable-debug-command", "yes"])
    c = s.client()
    assert pyexecute(c, GLOBALS_SCRIPT) == "OK"
    c.set("gl:1", 1)
    expected = 'val-42:{"k": "gl:1"}'
    assert c.get("out:gl:1") == expected
    if how == "save_restart":
        assert c.save()
        c.close()
        c = restart(s)
    else:
        c.execute_command("DEBUG", "RELOAD")
    c.set("gl:2", 1)
    assert c.get("out:gl:2") == 'val-42:{"k": "gl:2"}'


def test_unregister_persists(fresh_server):
    s = fresh_server()
    c = s.client()
    a, b = make_registrations(c)
    assert c.execute_command("RG.UNREGISTER", a) == "OK"
    summary = reg_summary(c)
    assert a not in summary
    assert c.save()
    c.close()
    c = restart(s)
    assert reg_summary(c) == summary
    assert "persist" not in sessions(c)
    c.set("pa:1", 1)
    assert c.get("cnt:pa") is None


def test_debug_reload(fresh_server):
    s = fresh_server(extra_args=["--enable-debug-command", "yes"])
    c = s.client()
    a, b = make_registrations(c)
    summary = reg_summary(c)
    sess = session_regs(c)
    for i in range(5):
        c.set(f"pa:{i}", i)
    fired = log_lines(s, "PFIRED ")
    for round_ in range(2):
        assert c.execute_command("DEBUG", "RELOAD") in ("OK", b"OK", True)
        assert reg_summary(c) == summary  # not doubled, same ids
        assert session_regs(c) == sess
        assert log_lines(s, "PFIRED ") == fired  # reloading fired nothing
        assert c.get("sideeffect") is None and c.get("runeffect") is None
    check_registrations_work(c, a, b, before_a=5)
    # each event fired each registration once
    assert c.get("cnt:pa") == "6"
    regs = dump_regs(c)
    assert regs[b]["data"]["numTriggered"] == 1
    assert s.alive()


def test_aof_rewrite_and_restart(fresh_server):
    s = fresh_server(extra_args=["--appendonly", "yes", "--aof-use-rdb-preamble", "yes"])
    c = s.client()
    a, b = make_registrations(c)
    summary = reg_summary(c)
    sess = session_regs(c)
    c.bgrewriteaof()
    wait_aof_rewrite(c)
    c.close()
    c = restart(s)
    assert reg_summary(c) == summary
    assert session_regs(c) == sess
    assert c.get("sideeffect") is None and c.get("runeffect") is None
    check_registrations_work(c, a, b)
    assert s.alive()


def test_aof_registrations_after_rewrite_survive(fresh_server):
    # a registration made after the rewrite reaches the AOF's incremental part
    s = fresh_server(extra_args=["--appendonly", "yes", "--aof-use-rdb-preamble", "yes"])
    c = s.client()
    a = register_id(c, counter("aa:*", "cnt:aa"), "ID", "before")
    c.bgrewriteaof()
    wait_aof_rewrite(c)
    b = register_id(c, counter("ab:*", "cnt:ab"), "ID", "after")
    assert c.execute_command("RG.UNREGISTER", a) == "OK"
    summary = reg_summary(c)
    assert set(summary) == {b}
    c.close()
    c = restart(s)
    assert reg_summary(c) == summary
    assert set(session_regs(c)) == {"after"}
    c.set("ab:1", 1)
    c.set("aa:1", 1)
    assert c.get("cnt:ab") == "1"
    assert c.get("cnt:aa") is None


# ---------------------------------------------------------------------------- replication

def test_replica_receives_registrations_and_never_fires(fresh_server):
    p = fresh_server(extra_args=["--repl-diskless-sync-delay", "0"])
    pc = p.client()
    a = register_id(pc, counter("rp:*", "cnt:rp"), "ID", "before")
    assert pyexecute(pc, SIDE_EFFECT_SCRIPT, "ID", "effects")[1] == []
    assert pc.get("sideeffect") == "1" and pc.get("runeffect") == "1"
    se = [rid for rid in dump_regs(pc) if rid != a]
    assert len(se) == 1

    rep = fresh_server(extra_args=["--replicaof", "127.0.0.1", str(p.port)])
    rc = rep.client()
    wait_link_up(rc)
    wait_until(lambda: set(dump_regs(rc)) == {a, se[0]}, what="registrations on the replica")
    assert reg_summary(rc) == reg_summary(pc)

    # registered after the replica connected
    b = register_id(pc, counter("rq:*", "cnt:rq", mode="async"), "ID", "after")
    wait_until(lambda: b in dump_regs(rc), what="the new registration on the replica")
    assert reg_summary(rc) == reg_summary(pc)
    assert session_regs(rc) == session_regs(pc)

    for i in range(5):
        pc.set(f"rp:{i}", i)
        pc.set(f"rq:{i}", i)
        pc.set(f"se:{i}", i)
    assert pc.get("cnt:rp") == "5"
    assert pc.get("cnt:se") == "5"
    wait_until(lambda: pc.get("cnt:rq") == "5", what="async executions on the primary")
    wait_replica_caught_up(pc, rc)
    # the replica has the primary's writes (and the effects of its executions) once
    assert rc.get("cnt:rp") == "5"
    assert rc.get("cnt:rq") == "5"
    assert rc.get("cnt:se") == "5"
    assert rc.get("sideeffect") == "1" and rc.get("runeffect") == "1"
    for rid, d in dump_regs(rc).items():
        assert d["data"]["numTriggered"] == 0, (rid, d["data"])
    assert dump_regs(pc)[a]["data"]["numTriggered"] == 5

    # unregister reaches the replica
    assert pc.execute_command("RG.UNREGISTER", a) == "OK"
    wait_until(lambda: a not in dump_regs(rc), what="the unregister on the replica")
    assert set(dump_regs(rc)) == set(dump_regs(pc))
    assert "before" not in sessions(rc)

    # promoted, the replica fires
    assert rc.execute_command("REPLICAOF", "NO", "ONE") in ("OK", True)
    rc.set("se:promoted", 1)
    assert rc.get("cnt:se") == "6"
    rc.set("rq:promoted", 1)
    wait_until(lambda: rc.get("cnt:rq") == "6", what="the async registration on the promoted")
    rc.set("rp:promoted", 1)  # unregistered: nothing
    assert rc.get("cnt:rp") == "5"
    regs = dump_regs(rc)
    assert regs[b]["data"]["numTriggered"] == 1
    assert rc.get("sideeffect") == "1" and rc.get("runeffect") == "1"
    assert p.alive() and rep.alive()


def test_replicaof_command_and_loading_fire_nothing(fresh_server):
    p = fresh_server(extra_args=["--repl-diskless-sync-delay", "0"])
    pc = p.client()
    a = register_id(pc, "GB().foreach(lambda x: log('RFIRED ' + x['key']))"
                        ".foreach(lambda x: execute('incr', 'cnt:rl'))"
                        ".register(prefix='rl:*', mode='sync')")
    for i in range(10):
        pc.set(f"rl:{i}", i)
    rep = fresh_server()
    rc = rep.client()
    rc.set("junk", 1)  # dropped by the full sync
    assert rc.execute_command("REPLICAOF", "127.0.0.1", str(p.port)) in ("OK", True)
    wait_link_up(rc)
    wait_until(lambda: a in dump_regs(rc), what="the registration on the replica")
    wait_replica_caught_up(pc, rc)
    assert rc.get("cnt:rl") == "10"
    assert rc.get("junk") is None
    assert log_lines(rep, "RFIRED ") == 0
    pc.set("rl:more", 1)
    wait_replica_caught_up(pc, rc)
    assert rc.get("cnt:rl") == "11"
    assert log_lines(rep, "RFIRED ") == 0
    assert dump_regs(rc)[a]["data"]["numTriggered"] == 0
    assert rc.execute_command("REPLICAOF", "NO", "ONE") in ("OK", True)
    rc.set("rl:own", 1)
    assert rc.get("cnt:rl") == "12"
    assert log_lines(rep, "RFIRED ") == 1
