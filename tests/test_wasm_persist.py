"""Guests persist and replicate exactly like Python registrations: restart, DEBUG
RELOAD, AOF rewrite, replica, promotion; and REPLACE swaps a live guest with no event lost
or run twice."""
import threading

from conftest import upload, guest_regs, dump_regs, wasmrun_ok, wait_until, pairs
from test_registrations_persist import (restart, wait_link_up, wait_replica_caught_up,
                                        wait_aof_rewrite)


def listing(c):
    return {pairs(g)["name"]: (pairs(g)["hash"], pairs(g)["description"],
                               tuple(pairs(g)["registrations"]))
            for g in c.execute_command("RG.WASMLIST")}


def test_restart_keeps_guests_and_ids(fresh_server):
    s = fresh_server()
    c = s.client()
    upload(c, "kitchen", None, "DESCRIPTION", "kit")
    upload(c, "genres")
    ids = guest_regs(c, "kitchen")
    assert len(ids) == 8
    # one registration removed before saving stays removed
    c.execute_command("RG.UNREGISTER", ids[1])
    before = listing(c)
    regs = {rid: (d["reader"], d["data"]["mode"], d["args"]) for rid, d in dump_regs(c).items()}
    c.save()
    c = restart(s)
    assert listing(c) == before
    assert {rid: (d["reader"], d["data"]["mode"], d["args"])
            for rid, d in dump_regs(c).items()} == regs
    c.set("wsync:1", 1)
    assert c.smembers("wasm_seen") == {"wsync:1"}
    c.set("wasync:1", 1)  # its registration was removed
    c.hset("movie:1", "genres", "Drama")
    assert wasmrun_ok(c, "genres", "count") == [["key", "Drama", "value", 1]]
    assert c.scard("wasm_seen_async") == 0


def test_debug_reload_does_not_double(fresh_server):
    s = fresh_server(extra_args=["--enable-debug-command", "yes"])
    c = s.client()
    upload(c, "kitchen")
    before = listing(c)
    for _ in range(2):
        c.execute_command("DEBUG", "RELOAD")
    assert listing(c) == before
    assert len(dump_regs(c)) == 8
    c.set("wsync:1", 1)
    assert c.smembers("wasm_seen") == {"wsync:1"}


def test_aof_rewrite_and_restart(fresh_server):
    s = fresh_server(extra_args=["--appendonly", "yes", "--aof-use-rdb-preamble", "yes"])
    c = s.client()
    upload(c, "all_keys")
    c.execute_command("BGREWRITEAOF")
    wait_aof_rewrite(c)
    upload(c, "genres")  # after the rewrite: in the AOF tail as RG.INNERWASM
    before = listing(c)
    c = restart(s)
    assert listing(c) == before
    c.set("x", 1)
    wait_until(lambda: c.sismember("all_keys", "x"), what="all_keys after restart")


def test_replica_gets_guests_and_promotion_fires(fresh_server):
    p = fresh_server(extra_args=["--repl-diskless-sync-delay", "0"])
    pc = p.client()
    upload(pc, "kitchen")
    rep = fresh_server(extra_args=["--replicaof", "127.0.0.1", str(p.port)])
    rc = rep.client()
    wait_link_up(rc)
    wait_until(lambda: listing(rc) == listing(pc), what="guests on the replica")
    upload(pc, "genres")  # after the replica connected
    upload(pc, "kitchen", None, "REPLACE")
    wait_until(lambda: listing(rc) == listing(pc), what="replicated uploads")
    pc.set("wsync:1", 1)
    wait_replica_caught_up(pc, rc)
    assert rc.smembers("wasm_seen") == {"wsync:1"}
    assert all(d["data"]["numTriggered"] == 0 for d in dump_regs(rc).values())
    pc.execute_command("RG.WASMDELETE", "genres")
    wait_until(lambda: "genres" not in listing(rc), what="the delete on the replica")
    assert rc.execute_command("REPLICAOF", "NO", "ONE") in ("OK", True)
    rc.set("wsync:2", 1)
    assert rc.smembers("wasm_seen") == {"wsync:1", "wsync:2"}


def test_replace_loses_no_event_and_runs_none_twice(r, server):
    """Writers keep writing while the guest is replaced again and again: all_keys holds
    every key (none lost), and a counter registration counts each event once."""
    upload(r, "all_keys")
    stop = threading.Event()
    written = []

    def writer():
        c = server.client()
        i = 0
        while not stop.is_set():
            c.set(f"w:{i}", i)
            written.append(f"w:{i}")
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(10):
            assert upload(r, "all_keys", None, "REPLACE") == "OK"
    finally:
        stop.set()
        t.join()
    assert len(written) > 0
    wait_until(lambda: r.scard("all_keys") == len(written), timeout=20,
               what="every key in all_keys")
    assert r.smembers("all_keys") == set(written)
    assert len(dump_regs(r)) == 1


def test_replace_stream_guest_continues_without_reprocessing(r):
    """A stream registration replaced by the same trigger keeps its consumer group: no
    message is applied twice, none is lost."""
    upload(r, "kitchen")
    for i in range(20):
        r.xadd("wstream", {f"f{i}": "1"})
    wait_until(lambda: all(r.get(f"ws:f{i}") == "1" for i in range(20)), what="first batch")
    before = guest_regs(r, "kitchen")
    for i in range(20):
        r.delete(f"ws:f{i}")
    upload(r, "kitchen", None, "REPLACE")
    assert guest_regs(r, "kitchen") == before  # unchanged triggers keep their ids
    for i in range(20, 30):
        r.xadd("wstream", {f"f{i}": "1"})
    wait_until(lambda: all(r.get(f"ws:f{i}") == "1" for i in range(20, 30)),
               what="messages after the replace")
    assert all(r.get(f"ws:f{i}") is None for i in range(20)), "re-processed old messages"
