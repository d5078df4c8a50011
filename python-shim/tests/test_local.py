"""gears.local, the dry run outside Redis: its keyspace, each step as one shard runs it,
and fire() of a registration."""

import pytest

from gears import local


@pytest.fixture(autouse=True)
def clean():
    local.reset()
    yield
    local.reset()


def run(records, *steps):
    return local._run_steps(list(records), list(steps))


def test_keyspace_answers_as_redis():
    ks = local.keyspace
    assert ks.execute('set', 'a', '1') == 'OK' and ks.execute('incr', 'a') == 2
    assert ks.execute('hset', 'h', 'f', 'v', 'g', 'w') == 2 and ks.execute('hget', 'h', 'f') == 'v'
    assert ks.execute('sadd', 's', 'x', 'y', 'x') == 2 and ks.execute('smembers', 's') == ['x', 'y']
    assert ks.execute('rpush', 'l', 'a', 'b') == 2 and ks.execute('lrange', 'l', 0, -1) == ['a', 'b']
    assert ks.execute('keys', '*') == ['a', 'h', 'l', 's'] and ks.execute('type', 'h') == 'hash'
    with pytest.raises(local.GearsError, match='WRONGTYPE'):
        ks.execute('get', 'h')
    with pytest.raises(local.GearsError, match='unknown command'):
        ks.execute('zadd', 'z', 1, 'm')


def test_every_step():
    nums = [3, 1, 2, 2]
    assert run(nums, ('map', (lambda x: x * 10,))) == ([30, 10, 20, 20], [])
    assert run(nums, ('flatmap', (lambda x: [x, x],)))[0] == [3, 3, 1, 1, 2, 2, 2, 2]
    assert run(nums, ('filter', (lambda x: x > 1,)))[0] == [3, 2, 2]
    assert run(nums, ('accumulate', (lambda a, x: (a or 0) + x,)))[0] == [8]
    assert run(nums, ('groupby', (lambda x: x % 2, lambda k, a, x: (a or 0) + x)))[0] == [
        {'key': 1, 'value': 4}, {'key': 0, 'value': 4}]
    assert run(nums, ('batchgroupby', (lambda x: x % 2, lambda k, rs: len(rs))))[0] == [
        {'key': 1, 'value': 2}, {'key': 0, 'value': 2}]
    assert run(nums, ('aggregate', (0, lambda a, x: a + x, lambda a, b: a + b)))[0] == [8]
    assert run(nums, ('aggregateby', (lambda x: x % 2, 0, lambda k, a, x: a + x,
                                      lambda k, a, b: a + b)))[0] == [
        {'key': 1, 'value': 4}, {'key': 0, 'value': 4}]
    assert run(nums, ('count', ()))[0] == [4]
    assert run(['a', 'b', 'a'], ('countby', (None,)))[0] == [{'key': 'a', 'value': 2},
                                                              {'key': 'b', 'value': 1}]
    assert run(nums, ('distinct', ()))[0] == [3, 1, 2]
    assert run(nums, ('avg', (None,)))[0] == [2.0]
    assert run(['b', 2, 'a', 1], ('sort', (False,)))[0] == [1, 2, 'a', 'b']
    assert run(nums, ('sort', (True,)), ('limit', (2, 1)))[0] == [2, 2]
    assert run(nums, ('collect', ()), ('repartition', (str,)))[0] == nums


def test_a_records_error_drops_it_and_is_reported():
    results, errors = run([1, 0, 2], ('map', (lambda x: 2 // x,)))
    assert results == [2, 1] and errors == ['ZeroDivisionError: integer division or modulo by zero']


def test_fire_runs_matching_registrations():
    local.native.register('KeysReader', {'prefix': 'user:*', 'readValue': True},
                          [('map', (lambda r: r['key'],))], {})
    local.keyspace.set('user:1', 'ada')
    assert [r.results for r in local.fire('user:1')] == [['user:1']]
    assert local.fire('other') == []
