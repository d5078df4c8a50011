"""docs/roles.md's four users, exactly as written there, on Redis 7.0 (module commands in no
ACL category) and Valkey 8.1 (in @read / @write / @admin @dangerous / @gears): each user can
do what its role says, and no more."""
import os

import pytest
import redis

from conftest import ROOT, RedisServer, guest_bytes

VALKEY = os.environ.get("VALKEY_SERVER", "")
NOPERM = redis.exceptions.NoPermissionError


def documented_users():
    """The ACL SETUSER lines of docs/roles.md, as argument lists."""
    with open(os.path.join(ROOT, "docs", "roles.md")) as f:
        lines = [line.split() for line in f.read().splitlines()
                 if line.startswith("ACL SETUSER ")]
    assert [line[2] for line in lines] == ["gears-reader", "gears-runner", "gears-deployer",
                                           "gears-admin"], lines
    return lines


@pytest.fixture(scope="module", params=["redis-7.0", "valkey-8.1"])
def server(request):
    if request.param == "valkey-8.1":
        if not (VALKEY and os.access(VALKEY, os.X_OK)):
            pytest.fail("VALKEY_SERVER is not set to a valkey-server binary (make test fetches one)")
        s = RedisServer(binary=VALKEY).start()
    else:
        s = RedisServer().start()
    c = s.client()
    for line in documented_users():
        assert c.execute_command(*line) == "OK", line
    yield s
    alive, log = s.alive(), s.log()
    s.stop()
    assert alive, log[-3000:]


def as_user(server, role):
    return server.client(username=f"gears-{role}", password=f"{role}-pass")


def refused(client, *command):
    with pytest.raises(NOPERM):
        client.execute_command(*command)


def exec_job(client, *command):
    """RG.WASMRUN kitchen exec: the guest runs `command` through execute(); its reply as
    text, or 'ERR: ...'."""
    results, errors = client.execute_command("RG.WASMRUN", "kitchen", "exec", *command)
    assert errors == [] and len(results) == 1, (results, errors)
    return results[0]


def test_the_four_roles(server):
    admin = server.client()
    reader, runner = as_user(server, "reader"), as_user(server, "runner")
    deployer = as_user(server, "deployer")
    admin.set("app:1", "one")
    admin.set("other:1", "secret")

    # deployer: uploads a guest; the guest acts for it (app:* only), whoever runs it.
    assert deployer.execute_command("RG.WASMUPLOAD", "kitchen", guest_bytes("kitchen")) == "OK"
    assert [g[1] for g in deployer.execute_command("RG.WASMLIST")] == ["kitchen"]
    assert "ERR" not in exec_job(deployer, "set", "app:2", "two")
    assert admin.get("app:2") == "two"
    assert "NOPERM" in exec_job(deployer, "get", "other:1")
    for command in (("RG.PYEXECUTE", "GB().run()"), ("RG.CONFIGSET", "BatchSize", "100"),
                    ("RG.UNREGISTER", "x"), ("GET", "other:1")):
        refused(deployer, *command)

    # runner: runs the deployed guest's jobs on app:*, and nothing else.
    assert "one" in exec_job(runner, "get", "app:1")
    assert "NOPERM" in exec_job(runner, "set", "other:1", "x")
    assert runner.get("app:1") == "one"
    eid = runner.execute_command("RG.WASMRUN", "kitchen", "keys_only", "UNBLOCKING")
    assert runner.execute_command("RG.GETRESULTSBLOCKING", eid)[1] is not None
    for command in (("RG.WASMUPLOAD", "k2", guest_bytes("kitchen")),
                    ("RG.WASMDELETE", "kitchen"), ("RG.PYEXECUTE", "GB().run()"),
                    ("RG.CONFIGSET", "BatchSize", "100"), ("RG.UNREGISTER", "x"),
                    ("GET", "other:1"), ("FLUSHALL",)):
        refused(runner, *command)

    # reader: reads what the module keeps, runs and changes nothing, reads no key.
    assert reader.ping()
    assert reader.execute_command("RG.GETRESULTS", eid) is not None
    assert reader.execute_command("RG.GETEXECUTION", eid)
    assert any(e[1] == eid for e in reader.execute_command("RG.DUMPEXECUTIONS"))
    assert len(reader.execute_command("RG.DUMPREGISTRATIONS")) >= 1
    assert [g[1] for g in reader.execute_command("RG.WASMLIST")] == ["kitchen"]
    assert reader.execute_command("RG.CONFIGGET", "BatchSize")
    for command in (("RG.PYSTATS",), ("RG.PYDUMPSESSIONS",), ("RG.INFOCLUSTER",)):
        reader.execute_command(*command)
    for command in (("RG.WASMRUN", "kitchen", "exec", "ping"), ("RG.PYEXECUTE", "GB().run()"),
                    ("RG.WASMUPLOAD", "k2", guest_bytes("kitchen")),
                    ("RG.CONFIGSET", "BatchSize", "100"), ("RG.ABORTEXECUTION", eid),
                    ("RG.DROPEXECUTION", eid), ("RG.TRIGGER", "t"), ("GET", "app:1")):
        refused(reader, *command)

    # admin: Python and the settings.
    boss = as_user(server, "admin")
    assert boss.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').count().run()")[0] == ["1"]
    assert boss.execute_command("RG.CONFIGSET", "MaxExecutions", "900") == ["OK"]
    assert deployer.execute_command("RG.WASMDELETE", "kitchen") == "OK"
    assert server.alive()


def test_the_runner_cannot_upload_on_any_server(server):
    # +@write grants RG.WASMUPLOAD where module commands have categories: the runner's
    # line takes it back.
    runner = as_user(server, "runner")
    refused(runner, "RG.WASMUPLOAD", "k3", guest_bytes("kitchen"))
    refused(runner, "RG.WASMDELETE", "kitchen")
    # Without the line's take-back, +@write alone would allow it where categories exist.
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "writer", "on", ">w", "~app:*", "-@all",
                          "+@write")
    writer = server.client(username="writer", password="w")
    has_categories = "rg.wasmupload" in admin.execute_command("ACL", "CAT", "write")
    if has_categories:
        assert writer.execute_command("RG.WASMUPLOAD", "k3", guest_bytes("kitchen")) == "OK"
        assert admin.execute_command("RG.WASMDELETE", "k3") == "OK"
    else:
        refused(writer, "RG.WASMUPLOAD", "k3", guest_bytes("kitchen"))
