"""Registrations on a Redis Cluster: register(), guest uploads and the registration
commands take effect on every master and their replicas with the same ids, and reply only
once every master has them; a change one master refuses is made nowhere."""
import pytest

from conftest import (Cluster, dump_regs, guest_bytes, pairs, pyexecute, shard_tags,
                      upload, wait_until)

KEYS_REGISTRATION = "GB().foreach(lambda r: execute('incr', 'seen{%s}' % hashtag())).register(prefix='k:*')"
STREAM_REGISTRATION = "GB('StreamReader').foreach(lambda r: None).register(prefix='s:*')"


def admin(node):
    return node.client()


def ids_on(node):
    return set(dump_regs(admin(node)))


def sessions_on(node):
    return [pairs(s)["ID"] for s in admin(node).execute_command("RG.PYDUMPSESSIONS")]


def guests_on(node):
    """{name: (hash, registration ids)} of RG.WASMLIST."""
    out = {}
    for g in admin(node).execute_command("RG.WASMLIST"):
        d = pairs(g)
        out[d["name"]] = (d["hash"], d["registrations"])
    return out


def test_register_reaches_every_master_and_replica_before_the_reply(cluster3r):
    c = cluster3r
    first = admin(c.masters[0])
    assert pyexecute(first, KEYS_REGISTRATION, "ID", "counting") == "OK"
    # Every master has it when the client got its answer: no polling.
    regs = [dump_regs(admin(m)) for m in c.masters]
    ids = [set(r) for r in regs]
    assert len(ids[0]) == 1 and all(i == ids[0] for i in ids), ids
    (rid,) = ids[0]
    assert rid.startswith(c.ids[c.masters[0].port] + "-")
    for r in regs:
        assert r[rid]["reader"] == "KeysReader" and r[rid]["args"]["regex"] == "k:*"
        assert r[rid]["data"]["mode"] == "async"
    for m in c.masters:
        assert sessions_on(m) == ["counting"]
    # Each master replicates it to its own replica.
    for rep in c.replicas:
        wait_until(lambda: ids_on(rep) == ids[0], what=f"replica {rep.port} to have it")


def test_every_master_fires_its_own_events(cluster3):
    c = cluster3
    client = c.client()
    assert pyexecute(admin(c.masters[1]), KEYS_REGISTRATION) == "OK"
    keys = [f"k:{i}" for i in range(300)]
    for k in keys:
        client.set(k, "v")
    owners = {}
    for k in keys:
        owners.setdefault(c.node_of(k).port, 0)
        owners[c.node_of(k).port] += 1
    assert len(owners) == 3
    tags = shard_tags(c)
    for m in c.masters:
        tag = tags[m.port]
        wait_until(lambda: admin(m).get("seen{%s}" % tag) == str(owners[m.port]),
                   what=f"master {m.port} to count its {owners[m.port]} keys")


def test_a_register_one_master_refuses_is_applied_nowhere():
    c = Cluster(masters=3, master_module_args={2: ("PythonEnabled", "0")}).start()
    try:
        first = admin(c.masters[0])
        with pytest.raises(Exception) as e:
            pyexecute(first, KEYS_REGISTRATION, "ID", "refused")
        text = str(e.value)
        refusing = c.ids[c.masters[2].port]
        assert "nothing was changed" in text and refusing in text, text
        assert "PythonEnabled 0" in text, text
        for m in c.masters:
            assert ids_on(m) == set()
        # The other masters staged the session: each drops it when the initiator's abort
        # reaches it, which may be just after the client got its error.
        wait_until(lambda: all(sessions_on(m) == [] for m in c.masters[:2]),
                   timeout=10, what="the staged sessions dropped")
        # A run (no registration) is not a change: it goes on as before.
        assert first.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').count().run()")[1] != []
        alive, logs = c.alive(), c.logs()
    finally:
        c.stop()
    assert alive, logs


def test_unregister_upgrade_and_replace_everywhere(cluster3r):
    c = cluster3r
    a, b = admin(c.masters[0]), admin(c.masters[1])
    assert pyexecute(a, KEYS_REGISTRATION, "ID", "s1") == "OK"
    (old,) = ids_on(c.masters[0])
    # UPGRADE from another master: the session's registrations are replaced everywhere.
    assert pyexecute(b, STREAM_REGISTRATION, "ID", "s1", "UPGRADE") == "OK"
    regs = [dump_regs(admin(m)) for m in c.masters]
    (new,) = set(regs[0])
    assert new != old
    for r in regs:
        assert set(r) == {new} and r[new]["reader"] == "StreamReader"
    # REPLACE_WITH: another session takes the place of s1's registrations.
    assert pyexecute(a, KEYS_REGISTRATION, "ID", "s2", "REPLACE_WITH", "s1") == "OK"
    ids = [ids_on(m) for m in c.masters]
    assert len(ids[0]) == 1 and new not in ids[0] and all(i == ids[0] for i in ids), ids
    for rep in c.replicas:
        wait_until(lambda: ids_on(rep) == ids[0], what=f"replica {rep.port} to follow")
    (last,) = ids[0]
    # UNREGISTER on any master removes it from all, and from their replicas.
    assert admin(c.masters[2]).execute_command("RG.UNREGISTER", last) == "OK"
    for m in c.masters:
        assert ids_on(m) == set()
    for rep in c.replicas:
        wait_until(lambda: ids_on(rep) == set(), what=f"replica {rep.port} to drop it")
    # Unknown everywhere: refused, with this shard's words.
    with pytest.raises(Exception, match="does not exist"):
        a.execute_command("RG.UNREGISTER", last)


def test_pause_and_clear_stats_everywhere(cluster3):
    c = cluster3
    a = admin(c.masters[0])
    assert pyexecute(a, STREAM_REGISTRATION) == "OK"
    (rid,) = ids_on(c.masters[0])
    assert admin(c.masters[1]).execute_command("RG.PAUSEREGISTRATIONS", rid) == "OK"
    for m in c.masters:
        assert dump_regs(admin(m))[rid]["data"]["status"] == "PAUSED"
    assert admin(c.masters[2]).execute_command("RG.UNPAUSEREGISTRATIONS", rid) == "OK"
    for m in c.masters:
        assert dump_regs(admin(m))[rid]["data"]["status"] != "PAUSED"
    client = c.client()
    for i in range(60):
        client.xadd(f"s:{i}", {"f": "v"})
    wait_until(lambda: sum(dump_regs(admin(m))[rid]["data"]["numTriggered"]
                           for m in c.masters) == 60, what="the messages to be read")
    # Each shard's statistics are its own (as 1.2); CLUSTER sums every master's.
    per_shard = [dump_regs(admin(m))[rid]["data"] for m in c.masters]
    assert all(d["numTriggered"] < 60 for d in per_shard)
    summed = {}
    for entry in a.execute_command("RG.DUMPREGISTRATIONS", "CLUSTER"):
        d = pairs(entry)
        summed[d["id"]] = pairs(d["RegistrationData"])
    assert set(summed) == ids_on(c.masters[0])
    assert summed[rid]["numTriggered"] == 60
    assert summed[rid]["numSuccess"] == sum(d["numSuccess"] for d in per_shard)
    with pytest.raises(Exception, match="Unknown arguments"):
        a.execute_command("RG.DUMPREGISTRATIONS", "EVERYWHERE")
    assert a.execute_command("RG.CLEARREGISTRATIONSSTATS") == "OK"
    for m in c.masters:
        assert dump_regs(admin(m))[rid]["data"]["numTriggered"] == 0
    # A registration that is not a stream's: refused before anything changed.
    assert pyexecute(a, KEYS_REGISTRATION) == "OK"
    other = (ids_on(c.masters[0]) - {rid}).pop()
    with pytest.raises(Exception, match="does not support pause"):
        a.execute_command("RG.PAUSEREGISTRATIONS", rid, other)
    for m in c.masters:
        assert dump_regs(admin(m))[rid]["data"]["status"] != "PAUSED"


def test_guest_upload_and_delete_everywhere(cluster3r):
    c = cluster3r
    a = admin(c.masters[1])
    assert upload(a, "kitchen") == "OK"
    seen = [guests_on(m) for m in c.masters]
    assert all("kitchen" in g for g in seen), seen
    assert all(g["kitchen"] == seen[0]["kitchen"] for g in seen), seen
    assert any(seen[0]["kitchen"][1]), "the kitchen guest registers something"
    for rep in c.replicas:
        wait_until(lambda: guests_on(rep).get("kitchen") == seen[0]["kitchen"],
                   what=f"replica {rep.port} to have the guest")
    # REPLACE keeps the ids of unchanged registrations, on every master.
    assert upload(a, "kitchen", None, "REPLACE") == "OK"
    assert all(guests_on(m)["kitchen"] == seen[0]["kitchen"] for m in c.masters)
    # A broken component is refused on the master that got it, before any other sees it.
    with pytest.raises(Exception):
        a.execute_command("RG.WASMUPLOAD", "broken", b"\0asm not a component")
    assert all("broken" not in guests_on(m) for m in c.masters)
    assert admin(c.masters[2]).execute_command("RG.WASMDELETE", "kitchen") == "OK"
    for m in c.masters:
        assert guests_on(m) == {} and ids_on(m) == set()
    for rep in c.replicas:
        wait_until(lambda: guests_on(rep) == {}, what=f"replica {rep.port} to drop it")
    assert len(guest_bytes("kitchen")) > 0


def test_a_master_that_joins_later_gets_every_registration_and_fires_events(cluster3r):
    c = cluster3r
    a = admin(c.masters[0])
    assert pyexecute(a, KEYS_REGISTRATION, "ID", "counting") == "OK"
    assert upload(a, "stream_to_keys") == "OK"
    ids, guests = ids_on(c.masters[0]), guests_on(c.masters[0])
    new = c.add_master()
    # Before it owns a slot: every registration and guest, with the same ids.
    wait_until(lambda: ids_on(new) == ids and guests_on(new) == guests, timeout=20,
               what="the new master to get every registration and guest")
    assert sessions_on(new) == ["counting"]
    c.reshard(c.masters[0], new, 1000)
    tags = shard_tags(c)
    assert c.masters.index(new) == 3 and new.port in tags
    client = c.client()
    keys = [f"k:{i}" for i in range(1000)]
    for k in keys:
        client.set(k, "v")
    own = sum(1 for k in keys if c.node_of(k) is new)
    assert own > 0
    wait_until(lambda: admin(new).get("seen{%s}" % tags[new.port]) == str(own),
               what=f"the new master to count its {own} keys")


def test_a_master_back_from_an_old_rdb_is_brought_up_to_date(cluster3):
    c = cluster3
    a, victim = admin(c.masters[0]), c.masters[2]
    assert pyexecute(a, KEYS_REGISTRATION, "ID", "old") == "OK"
    (old,) = ids_on(c.masters[0])
    assert upload(a, "kitchen") == "OK"
    assert admin(victim).execute_command("SAVE")
    # Changes the file does not hold: a new session, the old one and the guest gone.
    assert pyexecute(a, STREAM_REGISTRATION, "ID", "new") == "OK"
    assert a.execute_command("RG.UNREGISTER", old) == "OK"
    assert a.execute_command("RG.WASMDELETE", "kitchen") == "OK"
    expected = ids_on(c.masters[0])
    victim.proc.kill()
    victim.proc.wait()
    victim.start()
    # It loaded the old set, then a peer sent it the current one.
    wait_until(lambda: ids_on(victim) == expected and guests_on(victim) == {}, timeout=30,
               what="the restarted master to be brought up to date")
    assert sessions_on(victim) == ["new"]
    assert "brought up to date" in victim.log()
