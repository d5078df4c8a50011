"""The package `make dist` builds (docs/deploy.md), as another machine would use it.

Each test unpacks the tarball into a temporary folder and starts a plain redis-server from a
redis.conf that loads `redisgears.so` from there, as docs/deploy.md says. The package must
carry no path of the build machine: no RUNPATH, the no-Python build without libpython at
all, and with Python the interpreter found at run time (here Debian's libpython3.11, not
the one the development build links). GEARS_DIST names the tarball (`make test` builds it
first); without it the tests are skipped.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import pytest
import redis

from conftest import (REDIS_CLI, RedisServer, upload, wait_until, wasm_groupby_counts,
                      wasmrun_ok)

DIST = os.environ.get("GEARS_DIST")

pytestmark = pytest.mark.skipif(not DIST, reason="GEARS_DIST is not set (make test sets it)")

LIBS = ("redisgears.so", "gears-core.so", "gears-core-python.so")


@pytest.fixture(scope="module")
def package():
    assert os.path.isfile(DIST), f"{DIST} is missing: run make dist"
    root = tempfile.mkdtemp(prefix="gears-dist-")
    # docs/deploy.md's command, in a temporary folder instead of /opt/gears.
    subprocess.run(["tar", "-C", root, "--strip-components=1", "-xzf", DIST], check=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


class ConfServer(RedisServer):
    """redis-server started from a redis.conf, as a deployment runs it."""

    def __init__(self, loadmodule_line):
        super().__init__(load_module=False)
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"logfile {self.logfile}\nsave \"\"\nappendonly no\n{loadmodule_line}\n")

    def start(self, wait=True):
        return self.launch([self.binary, self.conf], wait=wait)

    def mapped(self):
        """The files the server process has mapped (its libraries)."""
        with open(f"/proc/{self.proc.pid}/maps") as f:
            return {line.split()[-1] for line in f if "/" in line}


@pytest.fixture
def start():
    servers = []

    def make(line, wait=True):
        s = ConfServer(line)
        servers.append(s)
        return s.start(wait=wait)

    yield make
    for s in servers:
        s.stop()


def dynamic(path):
    return subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                          check=True).stdout


def test_the_package_holds_what_docs_say(package):
    for name in LIBS + ("gears-python/gears/__init__.py", "python-shim/pyproject.toml",
                        "docs/deploy.md", "README.md"):
        assert os.path.exists(os.path.join(package, name)), name
    for lib in LIBS:
        d = dynamic(os.path.join(package, lib))
        assert "RUNPATH" not in d and "RPATH" not in d, f"{lib} carries a path:\n{d}"
    # Only the Python build links libpython, and by its name.
    assert "libpython" not in dynamic(os.path.join(package, "redisgears.so"))
    assert "libpython" not in dynamic(os.path.join(package, "gears-core.so"))
    assert re.search(r"NEEDED.*\[libpython3\.\d+\.so",
                     dynamic(os.path.join(package, "gears-core-python.so")))


def test_python_off_loads_no_libpython_and_runs_guests(package, start):
    s = start(f"loadmodule {package}/redisgears.so PythonEnabled 0")
    c = s.client()
    assert not [f for f in s.mapped() if "libpython" in f]
    assert f"{package}/gears-core.so" in s.mapped()
    (mod,) = [m for m in c.module_list() if m["name"] == "rg"]
    assert mod["ver"] > 1 and mod["path"] == f"{package}/redisgears.so"
    with pytest.raises(redis.ResponseError, match="Python is disabled"):
        c.execute_command("RG.PYEXECUTE", "GB().run()")
    # Everything else works: a Wasm guest's job over the keyspace.
    for i in range(5):
        c.hset(f"movie:{i}", "genres", "Comedy,Crime" if i % 2 else "Drama")
    assert upload(c, "genres") == "OK"
    counts = wasm_groupby_counts(wasmrun_ok(c, "genres", "count", "movie:*"))
    assert counts == {"Comedy": 2, "Crime": 2, "Drama": 3}, counts
    assert "Python off" in s.log()
    # docs/deploy.md's checks, as pasted (with the port).
    for args in (["MODULE", "LIST"], ["INFO", "rg_runtime"]):
        out = subprocess.run([REDIS_CLI, "-p", str(s.port)] + args, capture_output=True,
                             text=True, check=True).stdout
        assert "redisgears.so" in out if args[0] == "MODULE" else "# rg_runtime" in out, out


def test_python_on_finds_the_systems_libpython(package, start):
    s = start(f"loadmodule {package}/redisgears.so")
    c = s.client()
    libpython = [f for f in s.mapped() if "libpython" in f]
    assert libpython and all(not f.startswith(os.path.expanduser("~")) for f in libpython), \
        libpython
    assert f"{package}/gears-core-python.so" in s.mapped()
    c.set("movie:1", "x")
    # C extension modules see libpython's symbols (json's C speedups, math, hashlib).
    reply = c.execute_command(
        "RG.PYEXECUTE",
        "import json, math, hashlib\n"
        "GB().map(lambda r: json.dumps([r['key'], math.sqrt(16), "
        "hashlib.sha256(b'a').hexdigest()[:6], json.encoder.c_make_encoder is not None]))"
        ".run()")
    assert reply == [['["movie:1", 4.0, "ca9781", true]'], []], reply
    assert re.search(r"gears \S+ loaded: Python 3\.\d+", s.log())


def test_a_library_given_by_path(package, start):
    # The libpython of the interpreter running the tests (pyenv's, not the system's).
    lib = os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME"))
    if not os.path.exists(lib) or sys.version_info[:2] != (3, 11):
        pytest.skip(f"no shared libpython3.11 beside this interpreter ({lib})")
    s = start(f"loadmodule {package}/redisgears.so PythonLibrary {lib}")
    c = s.client()
    assert os.path.realpath(lib) in {os.path.realpath(f) for f in s.mapped()}
    assert c.execute_command("RG.PYEXECUTE", "GB('ShardsIDReader').count().run()")[0] == ["1"]


def test_a_missing_libpython_is_one_clear_line(package, start):
    s = start(f"loadmodule {package}/redisgears.so PythonLibrary /nonexistent/libpython3.11.so.1.0",
              wait=False)
    wait_until(lambda: s.proc.poll() is not None, timeout=20, what="redis-server to exit")
    log = s.log()
    assert "PythonEnabled is 1 but /nonexistent/libpython3.11.so.1.0 cannot be loaded" in log
    assert "apt install libpython3.11" in log and "PythonEnabled 0" in log
