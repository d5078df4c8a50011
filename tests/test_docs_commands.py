"""Every command the user documentation tells a reader to paste, run: the fenced blocks of
README.md and of every docs/*.md page, against real servers with the module.

Conventions of the pages (a block that follows none of them fails test_every_block_is_
of_a_known_kind):

- ```sh       commands typed in a terminal at the repository's root, with a server running
              (`make run`). Each block runs with `bash -e`. Wrappers first on PATH send
              redis-cli, deploy-guest.sh and the movie loader to this test's servers: port
              6379 (the default) becomes the page's server, 30001-30003 the three masters
              of a cluster this test starts for the page (what `make cluster` gives). A
              command that fails, or an error reply printed (ERR..., WRONGTYPE...), fails
              the test. Commands that cannot run here as written are in MIRRORED below.
- ```redis    Redis commands, one a line, as typed at the redis-cli prompt: each is sent
              as is (split as a shell splits it) and must not answer an error.
- ```python   a recipe: sent with RG.PYEXECUTE; it must not be refused, and its run must
              have no errors. Marked by the line `<!-- local -->` right before the fence:
              a script of the local dry run, run with python3 (the python-shim importable).
              Marked `<!-- fragment -->`: part of a recipe, not run.
- ```rust     part of a guest, marked `<!-- excerpt: <path> -->`: every line of the block
              must be a line of that file of this repository, in the same order (the file
              is compiled and tested by its own tests; the page may leave lines out).
- ```text     output, a record or a file's content: not run.

Each page's blocks run in the order of the page against a server of their own (and a
cluster of their own when a block names port 3000x), so a block may use what an earlier
block of its page made.
"""
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
import redis

from conftest import MODULE, REDIS_CLI, ROOT, Cluster, RedisServer

PAGES = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))

KINDS = ("sh", "redis", "python", "rust", "text")
MARKERS = ("fragment", "local", "excerpt")

# What a command line printed that is an error reply (redis-cli prints them on stdout).
ERROR_LINE = re.compile(r"^(\(error\) |ERR |WRONGTYPE |NOPERM |NOSCRIPT |CROSSSLOT |MOVED |ASK )")

# Commands of the pages that do not run here as written: (pattern of the command line,
# whether the rest of its block goes with it, why, what covers it instead). Each entry must
# match at least once (test_every_mirror_is_used), so the list stays what the pages say.
MIRRORED = [
    (r"^make run\b", "line",
     "builds the module and starts a server on 6379 in the foreground",
     "this test: a server with the prebuilt module (GEARS_MODULE) per page"),
    (r"^make test\b", "line",
     "runs every test, this one included",
     "the whole suite"),
    (r"^make cluster$", "line",
     "builds the module and starts a cluster on the fixed ports 30001-30003",
     "this test: conftest.Cluster(masters=3), its ports mapped from 30001-30003"),
    (r"^make cluster-stop$", "line",
     "removes the cluster of `make cluster`",
     "this test: the page's cluster is stopped at its end"),
    (r"^make new-guest ", "block",
     "a new crate outside the repository, its first native build and test (minutes)",
     "tests/test_guest_template.py runs the same commands on that crate"),
    (r"^pip install \./python-shim$", "line",
     "installs into the Python environment of whoever runs the tests",
     "tests/test_python_shim_pip.py; here python-shim is on PYTHONPATH instead"),
    (r"REQUIREMENTS six$", "line",
     "needs the package index and installs next to the module",
     "tests/test_requirements.py (REQUIREMENTS from a folder of wheels, and from the index)"),
    (r"^make dist$", "line",
     "builds the package (three more builds of the module crate)",
     "make test builds it before the black-box suite; tests/test_dist.py uses it"),
    (r"^sudo apt-get install -y redis-server libpython3\.11$", "line",
     "installs system packages",
     "make setup installs redis-server; tests/test_dist.py runs the package on the "
     "system's libpython3.11"),
    (r"^sudo mkdir -p /opt/gears$", "block",
     "unpacks into /opt as root",
     "tests/test_dist.py runs the same tar command into a temporary folder"),
    (r"^redis-server ", "line",
     "starts a server on a fixed port with a build's path",
     "test_load_arguments_of_the_pages: a server with the same load arguments"),
]


# ----------------------------------------------------------------------------- the pages


def blocks(page):
    """[(kind, marker, body, line number)] of a page's fenced blocks (indented ones too)."""
    with open(os.path.join(ROOT, page)) as f:
        lines = f.read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^( *)```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, kind, start = m.group(1), m.group(2), i
        body = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != indent + "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        marker = None
        if start > 0:
            mm = re.match(r"^\s*<!-- (\w+)(?::\s*(\S+))? -->\s*$", lines[start - 1])
            if mm:
                marker = (mm.group(1), mm.group(2))
        out.append((kind, marker, "\n".join(body) + "\n", start + 1))
        i += 1
    return out


def command_lines(body):
    """The commands of a shell block: its lines without comments and blank lines."""
    return [line for line in body.split("\n") if line.strip() and not line.lstrip().startswith("#")]


def mirror_of(line):
    for entry in MIRRORED:
        if re.search(entry[0], line):
            return entry
    return None


def split_block(body):
    """(the lines to run, the mirrored lines) of a shell block."""
    lines = command_lines(body)
    if lines and (m := mirror_of(lines[0])) and m[1] == "block":
        return [], lines
    run, mirrored = [], []
    for line in lines:
        (mirrored if mirror_of(line) else run).append(line)
    return run, mirrored


def needs_cluster(body):
    return bool(re.search(r"\b3000[1-3]\b|^make cluster", body, re.M))


# ---------------------------------------------------------------------- the wrappers


# The wrappers' port of this test for a port of the pages (GEARS_DOCS_PORTS: "doc:real ...").
MAP_PORT = r"""map() {
    for pair in $GEARS_DOCS_PORTS; do
        if [ "${pair%%:*}" = "$1" ]; then echo "${pair##*:}"; return; fi
    done
    echo "no server of this test for port $1" >&2; exit 99
}
"""

WRAPPER_CLI = r"""#!/usr/bin/env bash
# redis-cli of the pages, sent to this test's servers.
MAP_PORT
args=(); given=
while [ $# -gt 0 ]; do
    if [ "$1" = -p ]; then port=$(map "$2") || exit 99; args+=(-p "$port"); given=1; shift 2
    else args+=("$1"); shift; fi
done
if [ -z "$given" ]; then port=$(map 6379) || exit 99; args=(-p "$port" "${args[@]}"); fi
exec REAL_CLI "${args[@]}"
"""

WRAPPER_PYTHON = r"""#!/usr/bin/env bash
# python3 of the pages: the movie loader goes to this test's servers; anything else as is.
MAP_PORT
if [ "$1" = recipes/python/load_movies.py ]; then
    args=(); given=
    while [ $# -gt 0 ]; do
        if [ "$1" = --port ]; then port=$(map "$2") || exit 99; args+=(--port "$port"); given=1; shift 2
        else args+=("$1"); shift; fi
    done
    if [ -z "$given" ]; then port=$(map 6379) || exit 99; args+=(--port "$port"); fi
    exec REAL_PYTHON "${args[@]}"
fi
exec REAL_PYTHON "$@"
"""


@pytest.fixture(scope="module")
def wrappers():
    bin_dir = tempfile.mkdtemp(prefix="gears-docs-bin-")
    for name, text in (("redis-cli", WRAPPER_CLI.replace("REAL_CLI", REDIS_CLI)),
                       ("python3", WRAPPER_PYTHON.replace("REAL_PYTHON", sys.executable))):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(text.replace("MAP_PORT\n", MAP_PORT))
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    yield bin_dir
    shutil.rmtree(bin_dir, ignore_errors=True)


class Page:
    """A page's servers: one server, and a cluster once a block names its ports."""

    def __init__(self, page, bin_dir):
        self.page = page
        self.bin_dir = bin_dir
        self.req_dir = tempfile.mkdtemp(prefix="gears-docs-reqs-")
        # Requirements (none run here, see MIRRORED) would go to a folder of the test.
        self.server = RedisServer(module_args=["PythonRequirementsDir", self.req_dir]).start()
        self.cluster = None

    def ports(self):
        pairs = [f"6379:{self.server.port}"]
        if self.cluster:
            pairs += [f"{30001 + i}:{m.port}" for i, m in enumerate(self.cluster.masters)]
        return " ".join(pairs)

    def need_cluster(self):
        if self.cluster is None:
            self.cluster = Cluster(masters=3).start()

    def shell(self, lines, where):
        env = dict(os.environ,
                   PATH=self.bin_dir + os.pathsep + os.environ["PATH"],
                   GEARS_DOCS_PORTS=self.ports(),
                   PYTHONPATH=os.path.join(ROOT, "python-shim"))
        script = "set -e\n" + "\n".join(lines) + "\n"
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (where, script, done.stdout[-3000:], done.stderr[-3000:])
        errors = [line for line in done.stdout.splitlines() if ERROR_LINE.match(line)]
        assert not errors, (where, script, errors)
        print(f"--- {where}\n{script}{done.stdout}")  # shown with -s, or on a failure
        return done.stdout

    def stop(self):
        alive = self.server.alive() and (self.cluster is None or self.cluster.alive())
        log = self.server.log()[-3000:]
        self.server.stop()
        if self.cluster:
            self.cluster.stop()
        shutil.rmtree(self.req_dir, ignore_errors=True)
        assert alive, f"a server of {self.page} died:\n{log}"


def run_python(page, body, where):
    client = page.server.client()
    try:
        reply = client.execute_command("RG.PYEXECUTE", body)
    except redis.ResponseError as e:
        raise AssertionError(f"{where}: RG.PYEXECUTE refused the recipe: {e}\n{body}")
    finally:
        client.close()
    if reply != "OK":
        assert isinstance(reply, list) and len(reply) == 2, (where, reply)
        assert reply[1] == [], (where, body, reply[1])


def run_local(body, where):
    done = subprocess.run([sys.executable, "-c", body], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ,
                                                PYTHONPATH=os.path.join(ROOT, "python-shim")))
    assert done.returncode == 0, (where, body, done.stdout[-2000:], done.stderr[-2000:])


def run_redis(page, body, where):
    client = page.server.client()
    try:
        for line in command_lines(body):
            try:
                client.execute_command(*shlex.split(line))
            except redis.ResponseError as e:
                raise AssertionError(f"{where}: {line}: {e}")
    finally:
        client.close()


def check_excerpt(marker, body, where):
    assert marker and marker[0] == "excerpt" and marker[1], \
        f"{where}: a rust block needs <!-- excerpt: <path> --> before it"
    with open(os.path.join(ROOT, marker[1])) as f:
        source = f.read().split("\n")
    at = 0
    for line in body.rstrip("\n").split("\n"):
        try:
            at = source.index(line, at) + 1
        except ValueError:
            raise AssertionError(f"{where}: not a line of {marker[1]} (in order): {line!r}")


# ------------------------------------------------------------------------------ the tests


def test_every_block_is_of_a_known_kind():
    for page in PAGES:
        for kind, marker, _, line in blocks(page):
            where = f"{page}:{line}"
            assert kind in KINDS, f"{where}: a ```{kind} block (label it: one of {KINDS})"
            assert marker is None or marker[0] in MARKERS, f"{where}: unknown marker {marker}"


def test_pages_point_nowhere_outside_the_repository():
    """No page sends a reader to files that are not in the repository (or to notes that
    are not for users)."""
    for page in PAGES:
        with open(os.path.join(ROOT, page)) as f:
            text = f.read()
        for bad in ("shared/", "SPEC.md", "DESIGN.md", "RECIPES.md", "/work/"):
            assert bad not in text, f"{page} mentions {bad}"
        for link in re.findall(r"\]\(([^)#]+)", text):
            if link.startswith("http"):
                continue
            target = os.path.normpath(os.path.join(ROOT, os.path.dirname(page), link))
            assert os.path.exists(target), f"{page} links to {link}, which does not exist"


def test_every_mirror_is_used():
    lines = [line for page in PAGES for kind, _, body, _ in blocks(page) if kind == "sh"
             for line in command_lines(body)]
    for entry in MIRRORED:
        assert any(re.search(entry[0], line) for line in lines), f"unused mirror {entry}"


@pytest.mark.parametrize("page", PAGES)
def test_the_page_runs_as_written(page, wrappers):
    p = Page(page, wrappers)
    try:
        for kind, marker, body, line in blocks(page):
            where = f"{page}:{line}"
            if kind == "sh":
                run, _ = split_block(body)
                if needs_cluster(body):
                    p.need_cluster()
                if run:
                    p.shell(run, where)
            elif kind == "redis":
                run_redis(p, body, where)
            elif kind == "python" and marker and marker[0] == "local":
                run_local(body, where)
            elif kind == "python" and not (marker and marker[0] == "fragment"):
                run_python(p, body, where)
            elif kind == "rust":
                check_excerpt(marker, body, where)
    finally:
        p.stop()


def load_lines():
    """{page:line: command} of the `redis-server` commands of the pages."""
    return {f"{page}:{at}": line for page in PAGES for kind, _, body, at in blocks(page)
            if kind == "sh" for line in command_lines(body) if line.startswith("redis-server ")}


@pytest.mark.parametrize("line", load_lines().values(), ids=load_lines().keys())
def test_load_arguments_of_the_pages(line):
    """The mirror of a `redis-server ... --loadmodule <module> args` line: a server started
    with the same load arguments (the module this test runs, a free port) holds them."""
    words = shlex.split(line)
    at = words.index("--loadmodule")
    args = []
    for w in words[at + 2:]:
        if w.startswith("--"):
            break
        args.append(w)
    assert args and len(args) % 2 == 0, line
    s = RedisServer(module_args=args).start()
    try:
        c = s.client()
        names = args[0::2]
        assert [str(v) for v in c.execute_command("RG.CONFIGGET", *names)] == args[1::2], line
    finally:
        s.stop()
    assert os.path.basename(words[at + 1]) == os.path.basename(MODULE), line


def test_the_harness_fails_what_fails(wrappers):
    """A pasted command that fails, an error reply, a port no server of the test has and
    a recipe with errors each fail the page."""
    p = Page("harness", wrappers)
    try:
        assert "PONG" in p.shell(["redis-cli PING"], "ok")
        for bad in (["false"], ["redis-cli NOSUCHCOMMAND"], ["redis-cli -p 30001 PING"],
                    ["python3 recipes/python/load_movies.py --port 30001 --count 1"]):
            with pytest.raises(AssertionError):
                p.shell(bad, "bad")
        with pytest.raises(AssertionError):
            run_python(p, "GB('ShardsIDReader').map(lambda x: 1 / 0).run()", "bad")
        with pytest.raises(AssertionError):
            run_redis(p, "SET only-a-key\n", "bad")
    finally:
        p.stop()
