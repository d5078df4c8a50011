"""rgsync, RedisGears 1.2's write-behind library, unchanged: installed with REQUIREMENTS
from the package index, its README's write-behind example to a SQLite database. Every
change (inserts, updates, deletes) reaches the table, in order, and nothing but the
library writes to its stream."""
import os
import shutil
import sqlite3
import tempfile

import pytest

from conftest import ROOT, index_reachable, wait_until

# Requirements folder kept between runs of this checkout (rgsync needs SQLAlchemy and
# pymongo built from source: a minute the first time).
REQS = os.path.join(ROOT, "target", "test-requirements")


WRITE_BEHIND = """
from rgsync import RGWriteBehind, RGWriteThrough
from rgsync.Connectors import SQLiteConnection, SQLiteConnector

connection = SQLiteConnection('%s')
personsConnector = SQLiteConnector(connection, 'persons', 'person_id')

personsMappings = {
	'first_name':'first',
	'last_name':'last',
	'age':'age'
}

RGWriteBehind(GB,  keysPrefix='person', mappings=personsMappings, connector=personsConnector, name='PersonsWriteBehind',  version='99.99.99')
"""


def rows(db):
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("select person_id, first, last, age from persons"))


def test_rgsync_write_behind_to_sqlite(fresh_server):
    if not index_reachable():
        pytest.skip("the package index (pypi.org) cannot be reached from this machine")
    folder = tempfile.mkdtemp(prefix="gears-rgsync-")
    try:
        write_behind(fresh_server, os.path.join(folder, "test.db"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_behind(fresh_server, db):
    with sqlite3.connect(db) as conn:
        conn.execute("create table persons (person_id varchar(100) primary key, "
                     "first varchar(100), last varchar(100), age int)")
    s = fresh_server(module_args=["PythonRequirementsDir", REQS])
    c = s.client(socket_timeout=900)
    assert c.execute_command("RG.PYEXECUTE", WRITE_BEHIND % db, "REQUIREMENTS", "rgsync") == "OK"
    streams_before = set(c.keys("_persons-stream-*"))

    c.hset("person:1", mapping={"first_name": "foo", "last_name": "bar", "age": "22"})
    c.hset("person:2", mapping={"first_name": "ann", "last_name": "lee", "age": "33"})
    wait_until(lambda: rows(db) == [("1", "foo", "bar", 22), ("2", "ann", "lee", 33)],
               timeout=30, what="both persons in the database")
    # updates and deletes, in order: the last write wins, a delete removes the row
    for age in range(23, 30):
        c.hset("person:1", "age", str(age))
    c.delete("person:2")
    wait_until(lambda: rows(db) == [("1", "foo", "bar", 29)], timeout=30,
               what="the last update and the delete in the database")
    # the write-behind stream is the library's own: only it wrote there, and it is drained
    streams = set(c.keys("_persons-stream-*"))
    assert streams and (not streams_before or streams_before <= streams)
    for stream in streams:
        wait_until(lambda: c.xlen(stream) == 0, timeout=30, what="the stream trimmed")
    regs = c.execute_command("RG.DUMPREGISTRATIONS")
    assert len(regs) == 2
