"""The README's five-minute tour and its guest example, pasted: every shell block of the
tour, and the WebAssembly section's build / upload / run block, run as written in bash
(after `make run`, which this test replaces by a server of its own), with redis-cli and
the movie loader pointed at that server. No command may fail or answer an error. (The
section's `make new-guest` block is tests/test_guest_template.py's.)"""
import os
import re
import subprocess

from conftest import REDIS_CLI, ROOT

TOUR = ("## A five-minute tour", "## On a Redis Cluster")
GUESTS = ("## WebAssembly guests", "## Who may do what")


def tour_blocks(section=TOUR):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start, end = text.index(section[0]), text.index(section[1])
    blocks = re.findall(r"```([a-z]*)\n(.*?)```", text[start:end], re.S)
    shell = []
    for lang, body in blocks:
        if lang != "sh":  # a recipe's source, a reply (```python, ```text): not commands
            continue
        if body.strip() == "make run":  # the server: this test starts its own
            continue
        shell.append(body)
    return shell


def test_the_tour_runs_as_written(server):
    guest = [b for b in tour_blocks(GUESTS) if "genres.wasm" in b]
    assert len(guest) == 1, tour_blocks(GUESTS)
    blocks = tour_blocks() + guest
    assert len(blocks) >= 4, blocks
    wrappers = (
        f'redis-cli() {{ command {REDIS_CLI} -p {server.port} "$@"; }}\n'
        # the loader's --port: the tour's server is on the default port
        f'python3() {{ if [ "$1" = recipes/python/load_movies.py ]; then '
        f'command python3 "$@" --port {server.port}; else command python3 "$@"; fi; }}\n'
        "set -e\n")
    for block in blocks:
        done = subprocess.run(["bash", "-c", wrappers + block], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (block, done.stdout[-2000:], done.stderr[-2000:])
        errors = [line for line in done.stdout.splitlines()
                  if line.startswith(("ERR", "(error)", "WRONGTYPE", "NOPERM"))]
        assert not errors, (block, errors)
    c = server.client()
    assert c.exists("movie:tt0000001")
    done = [e for e in c.execute_command("RG.DUMPEXECUTIONS")]
    assert len(done) >= 2, done
    assert [g[1] for g in c.execute_command("RG.WASMLIST")] == ["genres"]
    c.execute_command("RG.CONFIGSET", "ProfileExecutions", "0")
