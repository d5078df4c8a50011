"""REQUIREMENTS (RedisGears 1.2's RG.PYEXECUTE option): pip packages a session needs,
installed per requirement under PythonRequirementsDir, persisted and replicated with the
session, and moved between machines with RG.PYEXPORTREQ / RG.PYIMPORTREQ.

The packages are wheels this file builds into a folder given as PythonWheelsDir, so the
tests need no package index (one test uses the real index when it can be reached)."""
import base64
import hashlib
import os
import shutil
import tempfile
import zipfile

import pytest
import redis

from conftest import pairs, pyexecute, wait_until

ResponseError = redis.exceptions.ResponseError


def make_wheel(folder, name, version, value):
    """A pure-Python wheel of module `name` whose VALUE is `value`."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: gears-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = os.path.join(folder, f"{dist}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
    return path


@pytest.fixture
def wheels():
    d = tempfile.mkdtemp(prefix="gears-wheels-")
    make_wheel(d, "gearsreqa", "1.0", "a1")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def req_dirs():
    made = []

    def make():
        d = tempfile.mkdtemp(prefix="gears-reqs-")
        made.append(d)
        return d
    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def server_with(fresh_server, req_dir, wheels_dir, **kwargs):
    args = ["PythonRequirementsDir", req_dir, "PythonWheelsDir", wheels_dir,
            # never the real index in these tests
            "PythonIndexUrl", "http://127.0.0.1:9/simple"]
    return fresh_server(module_args=args, **kwargs)


USE_A = "import gearsreqa\nGB('ShardsIDReader').map(lambda x: gearsreqa.VALUE).run()"
REGISTER_A = ("import gearsreqa\n"
              "GB('CommandReader').map(lambda x: gearsreqa.VALUE).register(trigger='reqa')")


def installed(req_dir):
    return sorted(n for n in os.listdir(req_dir) if not n.startswith("."))


def test_a_requirement_is_installed_for_the_session(fresh_server, wheels, req_dirs):
    d = req_dirs()
    s = server_with(fresh_server, d, wheels)
    c = s.client()
    assert pyexecute(c, USE_A, "REQUIREMENTS", "gearsreqa") == [["a1"], []]
    [folder] = installed(d)
    assert folder.startswith("gearsreqa-")
    # installed once: a second session finds it
    assert pyexecute(c, REGISTER_A, "ID", "sa", "REQUIREMENTS", "gearsreqa") == "OK"
    assert c.execute_command("RG.TRIGGER", "reqa") == ["a1"]
    [sa] = [pairs(x) for x in c.execute_command("RG.PYDUMPSESSIONS") if pairs(x)["ID"] == "sa"]
    assert sa["requirements"] == ["gearsreqa"] and sa["requirementInstallationNeeded"] == 0
    [req] = [pairs(x) for x in c.execute_command("RG.PYDUMPREQS")]
    assert req["Name"] == "gearsreqa" and req["IsInstalled"] == "yes"
    assert req["Wheels"] == ["gearsreqa-1.0-py3-none-any.whl"]


def test_a_requirement_that_cannot_be_installed(fresh_server, wheels, req_dirs):
    d = req_dirs()
    c = server_with(fresh_server, d, wheels).client()
    with pytest.raises(ResponseError, match="Failed install requirement nosuchpackage"):
        pyexecute(c, REGISTER_A, "REQUIREMENTS", "gearsreqa", "nosuchpackage")
    # nothing half-installed, nothing registered (gearsreqa, whole, may stay)
    assert all(n.startswith("gearsreqa-") for n in os.listdir(d))
    assert c.execute_command("RG.DUMPREGISTRATIONS") == []
    with pytest.raises(ResponseError, match="REQUIREMENTS needs at least one"):
        pyexecute(c, USE_A, "REQUIREMENTS")
    with pytest.raises(ResponseError, match="bad requirement"):
        pyexecute(c, USE_A, "REQUIREMENTS", "--index-url=http://evil")


def test_force_reinstall(fresh_server, wheels, req_dirs):
    d = req_dirs()
    c = server_with(fresh_server, d, wheels).client()
    assert pyexecute(c, USE_A, "REQUIREMENTS", "gearsreqa") == [["a1"], []]
    # a newer wheel appears: only FORCE_REINSTALL_REQUIREMENTS takes it
    make_wheel(wheels, "gearsreqa", "2.0", "a2")
    assert pyexecute(c, USE_A, "REQUIREMENTS", "gearsreqa") == [["a1"], []]
    pyexecute(c, "GB('ShardsIDReader').run()", "FORCE_REINSTALL_REQUIREMENTS",
              "REQUIREMENTS", "gearsreqa")
    files = os.listdir(os.path.join(d, installed(d)[0], "wheels"))
    assert files == ["gearsreqa-2.0-py3-none-any.whl"]


def test_installed_again_on_restart_and_on_a_replica(fresh_server, wheels, req_dirs):
    d = req_dirs()
    p = server_with(fresh_server, d, wheels,
                    extra_args=["--repl-diskless-sync-delay", "0"])
    pc = p.client()
    assert pyexecute(pc, REGISTER_A, "ID", "sa", "REQUIREMENTS", "gearsreqa") == "OK"
    # a replica with an empty requirements folder of its own installs it
    rd = req_dirs()
    rep = server_with(fresh_server, rd, wheels,
                      extra_args=["--replicaof", "127.0.0.1", str(p.port)])
    rc = rep.client()
    wait_until(lambda: len(rc.execute_command("RG.DUMPREGISTRATIONS")) == 1,
               timeout=30, what="the registration on the replica")
    assert installed(rd) and installed(rd)[0].startswith("gearsreqa-")
    # a restart with the requirements folder gone installs it again on load
    pc.save()
    shutil.rmtree(d)
    os.mkdir(d)
    p.proc.terminate()
    p.proc.wait(timeout=20)
    p.start()
    pc = p.client()
    assert pc.execute_command("RG.TRIGGER", "reqa") == ["a1"]
    assert installed(d)


def test_export_and_import_without_an_index(fresh_server, wheels, req_dirs):
    a = server_with(fresh_server, req_dirs(), wheels).client(decode_responses=False)
    assert a.execute_command("RG.PYEXECUTE", USE_A, "REQUIREMENTS", "gearsreqa") == [[b"a1"], []]
    chunks = a.execute_command("RG.PYEXPORTREQ", "gearsreqa")
    with pytest.raises(ResponseError, match="not installed"):
        a.execute_command("RG.PYEXPORTREQ", "other")
    # B reaches no index and has no wheels folder
    empty = tempfile.mkdtemp(prefix="gears-nowheels-")
    try:
        bd = req_dirs()
        b = server_with(fresh_server, bd, empty).client(decode_responses=False)
        with pytest.raises(ResponseError, match="Failed install requirement gearsreqa"):
            b.execute_command("RG.PYEXECUTE", USE_A, "REQUIREMENTS", "gearsreqa")
        assert b.execute_command("RG.PYIMPORTREQ", *chunks) == b"OK"
        assert b.execute_command("RG.PYEXECUTE", USE_A, "REQUIREMENTS", "gearsreqa") == [[b"a1"], []]
        with pytest.raises(ResponseError, match="not an exported requirement"):
            b.execute_command("RG.PYIMPORTREQ", b"garbage")
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def test_every_master_of_a_cluster_installs_them(wheels, req_dirs):
    from conftest import Cluster
    dirs = [req_dirs() for _ in range(3)]
    args = {i: ["PythonRequirementsDir", d, "PythonWheelsDir", wheels,
                "PythonIndexUrl", "http://127.0.0.1:9/simple"] for i, d in enumerate(dirs)}
    c = Cluster(masters=3, master_module_args=args).start()
    try:
        first = c.masters[0].client()
        assert first.execute_command("RG.PYEXECUTE", REGISTER_A, "ID", "sa",
                                     "REQUIREMENTS", "gearsreqa") == "OK"
        for d in dirs:
            assert installed(d) and installed(d)[0].startswith("gearsreqa-")
        for m in c.masters:
            assert m.client().execute_command("RG.TRIGGER", "reqa") == ["a1"]
    finally:
        c.stop()
