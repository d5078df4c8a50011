"""`pip install ./python-shim` in a fresh virtualenv gives the `gears` package outside Redis:
it imports without the module, checks a recipe's builder chain as Redis would, and
`python3 -m gears recipe.py` runs the recipe in its local dry run (gears.local)."""
import os
import subprocess
import sys
import textwrap

from conftest import ROOT


def test_pip_installs_gears_into_a_virtualenv_and_runs_a_recipe_dry(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # Offline: python-shim builds its wheel with the standard library (_build/).
    done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index",
                           os.path.join(ROOT, "python-shim")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    def py(*args, **kw):
        return subprocess.run([python, *args], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path, **kw)

    where = py("-c", "import gears; print(gears.__file__)")
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout, where.stdout  # the installed copy, not the checkout
    # PEP 561: a type checker reads the installed package's hints (and the native stub)
    installed = os.path.dirname(where.stdout.strip())
    for name in ("py.typed", "_gears.pyi"):
        assert os.path.exists(os.path.join(installed, name)), os.listdir(installed)

    bad = py("-c", "from gears import GB\nGB().map(1)")
    assert "argument must be a function" in bad.stderr, bad.stderr

    recipe = tmp_path / "recipe.py"
    recipe.write_text(textwrap.dedent("""
        from gears import local
        local.keyspace.execute('hset', 'movie:1', 'genres', 'Drama,Comedy')
        local.keyspace.execute('hset', 'movie:2', 'genres', 'Drama')
        GB('KeysOnlyReader').map(lambda k: execute('hget', k, 'genres')) \\
            .flatmap(lambda g: g.split(',')).countby().run('movie:*')
        GB().foreach(lambda r: execute('sadd', 'seen', r['key'])).register(prefix='movie:*')
        assert [r.results for r in local.fire('movie:1')] == [["{'key': 'movie:1', 'event': 'set', 'value': {'genres': 'Drama,Comedy'}, 'type': 'hash'}"]]
        assert execute('smembers', 'seen') == ['movie:1']
    """))
    run = py("-m", "gears", str(recipe))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == ("run of KeysOnlyReader: [[\"{'key': 'Drama', 'value': 2}\", "
                        "\"{'key': 'Comedy', 'value': 1}\"], []]"), lines
    assert lines[1].startswith("registered 0000000000000000000000000000000000000000-1: "
                               "KeysReader"), lines
