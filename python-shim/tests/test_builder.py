import pytest

import gears
from gears import GB, GearsBuilder


def last_run(fake):
    runs = [a for (n, a) in fake.calls if n == 'run']
    assert len(runs) == 1
    return runs[0]


TAIL = [('map', (str,)), ('collect', ())]


def test_all_names():
    assert set(gears.__all__) >= {'GearsBuilder', 'GB', 'execute', 'atomic', 'log',
                                  'configGet', 'gearsConfigGet', 'hashtag', 'gearsFuture',
                                  'isAsyncAllow'}
    for name in gears.__all__:
        assert hasattr(gears, name), name
    assert GB is GearsBuilder


def test_methods_record_steps_and_return_self():
    f = lambda x: x            # noqa: E731
    g = lambda k, a, r: a      # noqa: E731
    b = GB()
    assert b.map(f) is b
    b.flatmap(f).foreach(f).filter(f).accumulate(g).localgroupby(f, g).limit(10)
    b.limit(5, 2).collect().repartition(f).groupby(f, g).batchgroupby(f, g)
    b.aggregate(0, g, g).aggregateby(f, [], g, g).count().countby().countby(f)
    b.distinct().avg().avg(f).sort().sort(True)
    # countby's extractor gives str keys, as 1.2's (gears._fused.KEYS_AS_STR)
    counted = b.steps[16][1][0]
    assert counted is not f and counted(5) == '5' and counted('k') == 'k'
    b.steps[16] = ('countby', (f,))
    assert b.steps == [
        ('map', (f,)), ('flatmap', (f,)), ('foreach', (f,)), ('filter', (f,)),
        ('accumulate', (g,)), ('localgroupby', (f, g)), ('limit', (10, 0)),
        ('limit', (5, 2)), ('collect', ()), ('repartition', (f,)), ('groupby', (f, g)),
        ('batchgroupby', (f, g)), ('aggregate', (0, g, g)), ('aggregateby', (f, [], g, g)),
        ('count', ()), ('countby', (None,)), ('countby', (f,)), ('distinct', ()),
        ('avg', (None,)), ('avg', (f,)), ('sort', (False,)), ('sort', (True,)),
    ]


@pytest.mark.parametrize('call', [
    lambda b: b.map(1), lambda b: b.flatmap('x'), lambda b: b.foreach(None),
    lambda b: b.filter(3), lambda b: b.accumulate(None), lambda b: b.localgroupby(len, 1),
    lambda b: b.repartition(None), lambda b: b.groupby(1, len), lambda b: b.batchgroupby(len, 2),
    lambda b: b.aggregate(0, len, None), lambda b: b.aggregateby(len, 0, 1, len),
    lambda b: b.countby(3), lambda b: b.avg('x'), lambda b: b.limit('1'),
    lambda b: b.limit(1.5), lambda b: b.limit(True), lambda b: b.limit(1, None),
    lambda b: b.sort('yes'),
])
def test_bad_arguments_type_error(call):
    with pytest.raises(TypeError):
        call(GB())


def test_limit_negative_value_error():
    with pytest.raises(ValueError, match='non-negative'):
        GB().limit(-1)
    with pytest.raises(ValueError, match='non-negative'):
        GB().limit(1, -2)


def test_unknown_reader():
    with pytest.raises(ValueError, match='NoSuchReader'):
        GB('NoSuchReader')
    with pytest.raises(TypeError):
        GB(3)
    with pytest.raises(TypeError):
        GB('KeysReader', desc=3)


def test_keys_reader_run_defaults(fake):
    f = lambda x: x  # noqa: E731
    assert GB().map(f).run() is None
    assert last_run(fake) == (
        'KeysReader', {'pattern': '*', 'noScan': False, 'readValue': True},
        [('map', (f,))] + TAIL, {'mode': 'async', 'desc': None, 'convertToStr': True})


def test_keys_reader_run_args(fake):
    GB('KeysReader', desc='my desc').run('user:*', noScan=True, readValue=False, mode='sync',
                                        convertToStr=False, collect=False)
    assert last_run(fake) == (
        'KeysReader', {'pattern': 'user:*', 'noScan': True, 'readValue': False},
        [], {'mode': 'sync', 'desc': 'my desc', 'convertToStr': False})


def test_default_arg_used_for_missing_or_empty_arg(fake):
    GB('KeysReader', 'k:*').run('', collect=False)
    assert last_run(fake)[1]['pattern'] == 'k:*'
    assert last_run(fake)[2] == [('map', (str,))]


def test_keys_only_reader_run(fake):
    pg = lambda: ('x', True)  # noqa: E731
    GB('KeysOnlyReader').run('movie:*', count=50, noScan=False, patternGenerator=pg,
                             mode='async_local')
    assert last_run(fake) == (
        'KeysOnlyReader',
        {'pattern': 'movie:*', 'count': 50, 'noScan': False, 'patternGenerator': pg},
        TAIL, {'mode': 'async_local', 'desc': None, 'convertToStr': True})
    fake.reset()
    GB('KeysOnlyReader').run()
    assert last_run(fake)[1] == {'pattern': '*', 'count': 1000, 'noScan': False,
                                 'patternGenerator': None}


def test_keys_only_reader_bad_args():
    with pytest.raises(ValueError):
        GB('KeysOnlyReader').run(count=0)
    with pytest.raises(TypeError):
        GB('KeysOnlyReader').run(count='10')
    with pytest.raises(TypeError):
        GB('KeysOnlyReader').run(patternGenerator='x')


def test_stream_reader_run(fake):
    GB('StreamReader').run('s1', fromId='1-0')
    assert last_run(fake) == ('StreamReader', {'key': 's1', 'fromId': '1-0'}, TAIL,
                              {'mode': 'async', 'desc': None, 'convertToStr': True})
    fake.reset()
    GB('StreamReader').run('s2')
    assert last_run(fake)[1] == {'key': 's2', 'fromId': '0-0'}


def test_shards_id_reader_run(fake):
    GB('ShardsIDReader').count().run(mode='sync')
    assert last_run(fake) == ('ShardsIDReader', {}, [('count', ())] + TAIL,
                              {'mode': 'sync', 'desc': None, 'convertToStr': True})


def test_python_reader_run(fake):
    def gen():
        yield 1
    GB('PythonReader').run(gen)
    assert last_run(fake) == ('PythonReader', {'generator': gen}, TAIL,
                              {'mode': 'async', 'desc': None, 'convertToStr': True})
    with pytest.raises(TypeError, match='generator function'):
        GB('PythonReader').run()


def test_unknown_run_kwargs_refused_by_keysonlyreader_only(fake):
    """As 1.2: KeysOnlyReader's run() passes its keywords to the reader, which refuses
    unknown ones; the other readers' run() ignores them (recipes pass e.g. prefix=)."""
    with pytest.raises(TypeError) as ei:
        GB('KeysOnlyReader').run(None, readValue=False)
    assert str(ei.value) == 'Unknown arguments were given: readValue'
    assert not [c for c in fake.calls if c[0] == 'run']
    for reader, kwargs in [('KeysReader', {'foo': 1, 'prefix': 'a*'}),
                           ('StreamReader', {'noScan': True, 'batch': 2}),
                           ('ShardsIDReader', {'fromId': '0-0'}),
                           ('PythonReader', {'generator': len})]:
        arg = (lambda: iter(())) if reader == 'PythonReader' else None
        GB(reader).run(arg, **kwargs)
        assert [a for (n, a) in fake.calls if n == 'run'][-1][0] == reader


def test_bad_mode():
    with pytest.raises(ValueError, match='mode'):
        GB().run(mode='fast')


def test_bad_reader_arg_types():
    with pytest.raises(TypeError):
        GB().run(3)
    with pytest.raises(TypeError):
        GB().run(noScan='yes')
    with pytest.raises(TypeError):
        GB('StreamReader').run('s', fromId=0)


@pytest.mark.parametrize('reader', ['CommandReader', 'TimeReader'])
def test_register_only_readers_do_not_run(reader):
    with pytest.raises(ValueError) as ei:
        GB(reader).run()
    assert str(ei.value) == 'reader do not support run'


def test_run_does_not_mutate_builder(fake):
    b = GB().map(str)
    b.run()
    assert b.steps == [('map', (str,))]


def test_register_validates_arguments():
    with pytest.raises(TypeError, match='Unknown arguments were given: nope'):
        GB().register(prefix='x', nope=1)
    with pytest.raises(TypeError, match='eventTypes'):
        GB().register(eventTypes='set')
    with pytest.raises(ValueError, match='mode'):
        GB().register(mode='later')
    with pytest.raises(TypeError, match='onRegistered'):
        GB().register(onRegistered=3)


def test_register_builds_reader_args(fake):
    f = lambda x: x  # noqa: E731
    assert GB().map(f).register('user:*', eventTypes=['set'], readValue=False, mode='sync') \
        == '0' * 40 + '-1'
    reader, args, steps, options = fake.calls[-1][1]
    assert reader == 'KeysReader'
    assert args == {'prefix': 'user:*', 'eventTypes': ['set'], 'keyTypes': None,
                    'readValue': False, 'commands': None}
    assert steps == [('map', (f,)), ('map', (str,)), ('collect', ())]
    assert options['mode'] == 'sync'
    GB('StreamReader').register('s*', batch=5, duration=100, onFailedPolicy='retry')
    assert fake.calls[-1][1][1] == {'prefix': 's*', 'batch': 5, 'duration': 100,
                                    'onFailedPolicy': 'retry', 'onFailedRetryInterval': 1,
                                    'trimStream': True}
    GB('CommandReader').register(hook='set', keyprefix='k')
    assert fake.calls[-1][1][1] == {'hook': 'set', 'keyprefix': 'k'}
    assert fake.calls[-1][1][3]['mode'] == 'sync'
    GB('TimeReader').register(interval=50)
    assert fake.calls[-1][1][1] == {'interval': 50}


def test_register_refuses_bad_reader_args():
    with pytest.raises(ValueError, match='sync mode allows only'):
        GB('StreamReader').register(mode='sync', onFailedPolicy='abort')
    with pytest.raises(TypeError, match='trigger=name or hook=command'):
        GB('CommandReader').register()
    with pytest.raises(ValueError):
        GB('TimeReader').register(interval=0)
