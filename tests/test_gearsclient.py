"""gearsclient, RedisGears 1.2's Python client, unchanged: a client venv gets it from the
package index, the server gets it with REQUIREMENTS, and its documented usage runs.

gearsclient 1.0.2 pins cloudpickle < 2, which cannot pickle functions of Python 3.11: the
client venv takes the cloudpickle the module ships (the docs say so). Its default
requirement, a git URL on GitHub, is out of reach here, so the server installs the package
by its name (`requirements=['gearsclient'], addClientToRequirements=False`)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, index_reachable

VENV = os.path.join(ROOT, "target", "test-venvs", "gearsclient")
# The server's requirements folder, kept between runs of this checkout.
REQS = os.path.join(ROOT, "target", "test-requirements")


def shim_cloudpickle():
    with open(os.path.join(ROOT, "python-shim", "requirements.txt")) as f:
        return next(line.strip() for line in f if line.startswith("cloudpickle"))


@pytest.fixture(scope="module")
def venv():
    if not index_reachable():
        pytest.skip("the package index (pypi.org) cannot be reached from this machine")
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(os.path.join(VENV, "ready")):
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
        pip = [python, "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["--no-deps", "gearsclient==1.0.2"], check=True)
        subprocess.run(pip + ["redis>=4,<6", shim_cloudpickle(), "six"], check=True)
        open(os.path.join(VENV, "ready"), "w").close()
    return python


CLIENT = r'''
import json, sys
import redis
from gearsclient import GearsRemoteBuilder as GearsBuilder
from gearsclient import execute

conn = redis.Redis(host='127.0.0.1', port=int(sys.argv[1]))
opts = dict(r=conn, requirements=['gearsclient'], addClientToRequirements=False)
out = {}

# The README's example: count for each genre how many times it appears.
res = GearsBuilder('KeysOnlyReader', **opts).\
      map(lambda x: execute('hget', x, 'genres')).\
      filter(lambda x: x != '\\N').\
      flatmap(lambda x: x.split(',')).\
      map(lambda x: x.strip()).\
      countby().\
      run()
out['countby'] = sorted((r['key'], r['value']) for r in res[0])
out['errors'] = res[1]

res = GearsBuilder('KeysOnlyReader', **opts).map(lambda x: int(execute('hget', x, 'year'))).avg().run()
out['avg'] = res[0]
res = GearsBuilder('KeysOnlyReader', **opts).map(lambda x: int(execute('hget', x, 'year'))).\
      aggregate(0, lambda a, r: a + r, lambda a, r: a + r).run()
out['aggregate'] = res[0]
res = GearsBuilder('KeysOnlyReader', **opts).map(lambda x: int(execute('hget', x, 'year'))).\
      sort().limit(2).run()
out['sort_limit'] = res[0]
res = GearsBuilder('KeysOnlyReader', **opts).map(lambda x: execute('hget', x, 'title')).\
      distinct().count().run()
out['distinct_count'] = res[0]
out['register'] = GearsBuilder(**opts).foreach(lambda x: execute('incr', 'seen:' + x['key'])).\
      register(prefix='movie:*', mode='sync')
conn.hset('movie:9', mapping={'title': 'late', 'genres': 'Drama', 'year': 2020})
out['seen'] = conn.get('seen:movie:9').decode()
print(json.dumps(out, default=lambda b: b.decode()))
'''


def test_gearsclient_documented_usage(fresh_server, venv):
    s = fresh_server(module_args=["PythonRequirementsDir", REQS])
    c = s.client()
    movies = [("A", "Drama, Comedy", 1990), ("B", "Drama", 2000), ("C", "\\N", 2010),
              ("D", "Comedy", 2000)]
    for i, (title, genres, year) in enumerate(movies):
        c.hset(f"movie:{i}", mapping={"title": title, "genres": genres, "year": year})
    done = subprocess.run([venv, "-c", CLIENT, str(s.port)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["countby"] == [["Comedy", 2], ["Drama", 2]]
    assert out["avg"] == [2000.0]
    assert out["aggregate"] == [8000]
    assert out["sort_limit"] == [2010, 2000]
    assert out["distinct_count"] == [4]
    assert out["register"] == "OK"
    assert out["seen"] == "1"
