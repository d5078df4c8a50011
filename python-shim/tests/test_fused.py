import asyncio
import ctypes
import gc
import inspect
import threading
import time
import warnings

import pytest

import _gears
from gears import _fused, gearsFuture
from gears._fused import FusedRun, GeneratorReader

NOTB = {'profile': False, 'traceback': False, 'sync': False}
TB = {'profile': False, 'traceback': True, 'sync': False}
SYNC = {'profile': False, 'traceback': False, 'sync': True}
PROF = {'profile': True, 'traceback': False, 'sync': False}



@pytest.fixture(autouse=True)
def raw_group_keys(monkeypatch):
    """These tests check grouping on the extracted values themselves; the runtime's
    default (str keys, as RedisGears 1.2) has a test of its own."""
    monkeypatch.setattr(_fused, 'KEYS_AS_STR', False)

def run_all(steps, batches, options=NOTB):
    """Pushes each batch, then finishes; returns (outputs, errors)."""
    run = FusedRun(steps, options)
    outs, errs = [], []
    for b in batches:
        o, e = run.push(b)[:2]
        outs += o
        errs += e
    o, e = run.finish()
    return outs + o, errs + e


# --- stateless ops ---------------------------------------------------------------------

def test_no_steps_passes_records():
    run = FusedRun([], NOTB)
    assert run.push([1, 2])[:3] == ([1, 2], [], False)
    assert run.finish() == ([], [])
    assert run.timings() == []


def test_map():
    run = FusedRun([('map', (lambda x: x * 2,))], NOTB)
    assert run.push([1, 2, 3])[:3] == ([2, 4, 6], [], False)
    assert run.push([4])[:3] == ([8], [], False)
    assert run.finish() == ([], [])


def test_flatmap_keeps_order_and_non_lists_stay_one_record():
    steps = [('flatmap', (lambda x: x,))]
    assert run_all(steps, [[[1, 2, 3], (4, 5), 'ab', [], 6]]) == ([1, 2, 3, 4, 5, 'ab', 6], [])


def test_filter_and_foreach():
    seen = []
    steps = [('filter', (lambda x: x % 2,)), ('foreach', (lambda x: seen.append(x) or 'ignored',))]
    assert run_all(steps, [[1, 2, 3, 4, 5]]) == ([1, 3, 5], [])
    assert seen == [1, 3, 5]


def test_records_travel_depth_first():
    log = []
    steps = [('foreach', (lambda x: log.append(('a', x)),)),
             ('foreach', (lambda x: log.append(('b', x)),))]
    run_all(steps, [[1, 2]])
    assert log == [('a', 1), ('b', 1), ('a', 2), ('b', 2)]


def test_filter_truthiness_error_is_a_record_error():
    class Bad:
        def __bool__(self):
            raise ValueError('no truth')
    out, errs = run_all([('filter', (lambda x: Bad() if x == 2 else True,))], [[1, 2, 3]])
    assert out == [1, 3]
    assert errs == ['ValueError: no truth']


# --- stateful ops ----------------------------------------------------------------------

def test_accumulate():
    steps = [('accumulate', (lambda a, r: (a or 0) + r,))]
    run = FusedRun(steps, NOTB)
    assert run.push([1, 2])[:3] == ([], [], True)
    assert run.push([3])[:3] == ([], [], True)
    assert run.finish() == ([6], [])


def test_accumulate_no_input_no_output():
    run = FusedRun([('accumulate', (lambda a, r: r,))], NOTB)
    assert run.push([])[:3] == ([], [], True)
    assert run.finish() == ([], [])
    # a None accumulator after real input is still emitted
    assert run_all([('accumulate', (lambda a, r: None,))], [[1]]) == ([None], [])


def test_aggregate_local_deepcopies_zero():
    zero = []
    steps = [('aggregate_local', (zero, lambda a, r: (a.append(r), a)[1]))]
    assert run_all(steps, [[1, 2], [3]]) == ([[1, 2, 3]], [])
    assert zero == []
    assert run_all(steps, [[]]) == ([], [])


def test_localgroupby_first_seen_order():
    steps = [('localgroupby', (lambda r: r[0], lambda k, a, r: (a or 0) + r[1]))]
    out, errs = run_all(steps, [[('b', 1), ('a', 2)], [('b', 3), ('c', 4)]])
    assert errs == []
    assert out == [{'key': 'b', 'value': 4}, {'key': 'a', 'value': 2}, {'key': 'c', 'value': 4}]


def test_batchgroupby_local():
    steps = [('batchgroupby_local', (lambda r: r % 3, lambda k, rs: sorted(rs)))]
    out, errs = run_all(steps, [[1, 2, 3, 4], [5, 6, 7]])
    assert errs == []
    assert out == [{'key': 1, 'value': [1, 4, 7]}, {'key': 2, 'value': [2, 5]},
                   {'key': 0, 'value': [3, 6]}]


def test_batchgroupby_reduce_error_at_flush():
    steps = [('batchgroupby_local', (lambda r: r, lambda k, rs: 1 // (k - 1)))]
    out, errs = run_all(steps, [[0, 1, 2]])
    assert out == [{'key': 0, 'value': -1}, {'key': 2, 'value': 1}]
    assert errs == ['ZeroDivisionError: integer division or modulo by zero']


def test_aggregateby_local_and_global():
    zero = {'n': 0}

    def seq(k, a, r):
        a['n'] += r
        return a
    local = [('aggregateby_local', (lambda r: r % 2, zero, seq))]
    out, errs = run_all(local, [[1, 2, 3, 4, 5]])
    assert errs == []
    assert out == [{'key': 1, 'value': {'n': 9}}, {'key': 0, 'value': {'n': 6}}]
    assert zero == {'n': 0}

    glob = [('aggregateby_global', (0, lambda k, a, v: a + v))]
    out, errs = run_all(glob, [[{'key': 'x', 'value': 1}, {'key': 'y', 'value': 2}],
                               [{'key': 'x', 'value': 10}, 'not a dict']])
    assert out == [{'key': 'x', 'value': 11}, {'key': 'y', 'value': 2}]
    assert len(errs) == 1 and errs[0].startswith('TypeError: ')


def test_group_keys_unhashable_use_repr():
    steps = [('localgroupby', (lambda r: r['k'], lambda k, a, r: (a or 0) + 1))]
    recs = [{'k': [1, 2]}, {'k': '[1, 2]'}, {'k': [1, 2]}, {'k': (1, [2])}]
    out, errs = run_all(steps, [recs])
    assert errs == []
    assert out == [{'key': [1, 2], 'value': 2}, {'key': '[1, 2]', 'value': 1},
                   {'key': (1, [2]), 'value': 1}]


def test_group_keys_as_str_mode(monkeypatch):
    monkeypatch.setattr(_fused, 'KEYS_AS_STR', True)
    steps = [('localgroupby', (lambda r: r, lambda k, a, r: (a or 0) + 1))]
    out, _ = run_all(steps, [[1, '1', 'a', 1]])
    assert out == [{'key': '1', 'value': 3}, {'key': 'a', 'value': 1}]


def test_finish_flush_order_across_two_stateful_steps():
    log = []
    steps = [
        ('accumulate', (lambda a, r: (a or 0) + r,)),                          # 0
        ('foreach', (lambda x: log.append(('after0', x)),)),                     # 1
        ('flatmap', (lambda x: [x, x + 1],)),                                    # 2
        ('localgroupby', (lambda r: r % 2, lambda k, a, r: (a or 0) + r)),       # 3
        ('foreach', (lambda x: log.append(('after3', x['key'])),)),              # 4
        ('accumulate', (lambda a, r: (a or []) + [r['key']],)),                  # 5
    ]
    run = FusedRun(steps, NOTB)
    assert run.push([1, 2, 3])[:3] == ([], [], True)
    out, errs = run.finish()
    assert errs == []
    # accumulate(6) -> flatmap [6, 7] -> groups 0:6, 1:7 -> collected keys
    assert out == [[0, 1]]
    assert log == [('after0', 6), ('after3', 0), ('after3', 1)]


# --- errors ----------------------------------------------------------------------------

def boom(x):
    if x == 2:
        raise ValueError('bad record %d' % x)
    return x


def test_error_without_traceback():
    out, errs = run_all([('map', (boom,))], [[1, 2, 3]])
    assert out == [1, 3]
    assert errs == ['ValueError: bad record 2']


def test_error_with_traceback():
    out, errs = run_all([('map', (boom,))], [[1, 2, 3]], TB)
    assert out == [1, 3]
    assert len(errs) == 1
    head, rest = errs[0].split('\n', 1)
    assert head == 'ValueError: bad record 2'
    assert rest.startswith('Traceback (most recent call last):')
    assert 'in boom' in rest
    assert _fused.__file__ not in rest  # the shim's own frames are left out
    assert rest.endswith('ValueError: bad record 2')


def test_error_with_traceback_when_profiling():
    out, errs = run_all([('map', (boom,))], [[2]],
                        {'profile': True, 'traceback': True, 'sync': False})
    assert errs[0].startswith('ValueError: bad record 2\nTraceback')
    assert _fused.__file__ not in errs[0]


def test_flatmap_child_error_drops_only_that_child():
    steps = [('flatmap', (lambda x: [1, 2, 3],)), ('map', (boom,))]
    assert run_all(steps, [['r']]) == ([1, 3], ['ValueError: bad record 2'])


def test_accumulate_error_keeps_state():
    steps = [('accumulate', (lambda a, r: (a or 0) + (1 // r),))]
    out, errs = run_all(steps, [[1, 0, 1]])
    assert out == [2]
    assert errs == ['ZeroDivisionError: integer division or modulo by zero']


@pytest.mark.parametrize('exc, text', [
    (SystemExit(3), 'SystemExit: 3'),
    (KeyboardInterrupt('stop'), 'KeyboardInterrupt: stop'),
    (GeneratorExit(), 'GeneratorExit: '),
])
def test_base_exceptions_become_errors(exc, text):
    def f(x):
        raise exc
    out, errs = run_all([('map', (f,))], [[1]])
    assert out == []
    assert errs == [text]


def test_gears_error_from_execute_is_a_record_error(fake):
    def h(cmd, *args):
        raise _gears.GearsError('ERR wrong number of arguments')
    fake.state['execute'] = h
    out, errs = run_all([('map', (lambda x: _gears.execute('get'),))], [[1]])
    assert errs == ['GearsError: ERR wrong number of arguments']


def aborting(x):
    raise _gears.ExecutionAborted('aborted')


@pytest.mark.parametrize('op', ['map', 'flatmap', 'filter', 'foreach', 'accumulate'])
def test_execution_aborted_propagates_from_push(op):
    args = (aborting,) if op != 'accumulate' else (lambda a, r: aborting(r),)
    run = FusedRun([(op, args)], TB)
    with pytest.raises(_gears.ExecutionAborted):
        run.push([1])


def test_execution_aborted_propagates_from_groupby_and_finish():
    run = FusedRun([('localgroupby', (aborting, lambda k, a, r: r))], NOTB)
    with pytest.raises(_gears.ExecutionAborted):
        run.push([1])
    run = FusedRun([('batchgroupby_local', (lambda r: r, lambda k, rs: aborting(k)))], NOTB)
    run.push([1])
    with pytest.raises(_gears.ExecutionAborted):
        run.finish()


# --- futures ---------------------------------------------------------------------------

def test_future_resolved_by_another_thread(fake):
    def step(x):
        f = gearsFuture()
        threading.Timer(0.05, f.continueRun, (x * 10,)).start()
        return f
    run = FusedRun([('map', (step,)), ('map', (lambda x: x + 1,))], NOTB)
    assert run.push([1, 2])[:3] == ([], [], True)
    out, errs = run.finish()
    assert (out, errs) == ([11, 21], [])
    assert ('release_lock_slice', ()) in fake.calls


def test_future_already_resolved_and_failed():
    def step(x):
        f = gearsFuture()

        def resolve():
            if x == 1:
                f.continueRun('one')
            elif x == 2:
                f.continueFailed(ValueError('failed two'))
            else:
                f.continueFailed('plain text')
        t = threading.Thread(target=resolve)
        t.start()
        t.join()  # resolved by another thread before the step returns it
        return f
    out, errs = run_all([('map', (step,))], [[1, 2, 3]], TB)
    assert out == ['one']
    assert errs == ['ValueError: failed two', 'plain text']


def test_the_step_cannot_resolve_its_future_before_returning_it():
    # RedisGears 1.2's rule; a future the step kept from an earlier record is fine
    kept = []

    def step(x):
        f = gearsFuture()
        if x == 1:
            f.continueRun('early')
            return f
        if x == 2:
            kept.append(f)
        else:
            kept[0].continueRun('from record 2')
            f.continueFailed('record 3')  # no longer in its step's hands? it is: refused
        return f
    out, errs = run_all([('map', (step,))], [[1, 2, 3]])
    assert errs == ['GearsError: Can not handle future untill it returned from the callback'] * 2
    assert out == ['from record 2']


def test_a_future_nobody_holds_fails_its_record():
    def step(x):
        return gearsFuture()  # the run is the only one left holding it
    out, errs = run_all([('map', (step,))], [[1]])
    assert (out, errs) == ([], ['GearsError: Async record did not called continue'])


def test_future_resolved_twice_raises():
    f = gearsFuture()
    f.continueRun(1)
    with pytest.raises(_gears.GearsError):
        f.continueRun(2)


def test_futures_in_filter_foreach_flatmap():
    def fut(v):
        f = gearsFuture()
        threading.Timer(0.01, f.continueRun, (v,)).start()
        return f
    steps = [('filter', (lambda x: fut(x != 2),)),
             ('foreach', (lambda x: fut('ignored'),)),
             ('flatmap', (lambda x: fut([x, x]),))]
    assert run_all(steps, [[1, 2, 3]]) == ([1, 1, 3, 3], [])


def test_async_def_steps():
    async def double(x):
        import asyncio
        await asyncio.sleep(0.01)
        return x * 2

    async def keep_odd(x):
        return x % 2

    async def fail(x):
        raise KeyError('missing %d' % x)

    out, errs = run_all([('map', (double,)), ('filter', (keep_odd,))], [[1, 2]])
    assert (out, errs) == ([], [])
    out, errs = run_all([('map', (double,)), ('map', (lambda x: x + 1,))], [[1, 2]])
    assert (out, errs) == ([3, 5], [])
    out, errs = run_all([('map', (fail,))], [[7]], TB)
    assert out == []
    assert errs[0].startswith("KeyError: 'missing 7'\nTraceback (most recent call last):")
    assert 'in fail' in errs[0]
    assert 'asyncio' not in errs[0]


def test_async_step_returns_a_future_another_thread_resolves():
    async def step(x):
        f = gearsFuture()
        threading.Timer(0.01, f.continueRun, (x + 100,)).start()
        return f
    assert run_all([('map', (step,))], [[1]]) == ([101], [])


def test_async_results_reach_a_stateful_step_before_its_flush():
    async def double(x):
        return x * 2
    steps = [('map', (double,)), ('accumulate', (lambda a, r: (a or 0) + r,))]
    assert run_all(steps, [[1, 2], [3]]) == ([12], [])


def test_async_seq_in_stateful_step_is_awaited_inline():
    async def seq(a, r):
        return a + r
    steps = [('aggregate_local', (0, seq))]
    assert run_all(steps, [[1, 2, 3]]) == ([6], [])


def test_sync_execution_refuses_future_where_it_cannot_move(fake):
    def step(x):
        return gearsFuture()
    fake.state['async_allowed'] = False  # the host: this sync run cannot move
    out, errs = run_all([('map', (step,))], [[1]], SYNC)
    assert out == []
    assert errs == ['GearsError: Future object is not allowed on sync execution']


def test_sync_execution_that_may_move_parks_and_says_so(fake):
    futures = []

    def step(x):
        f = gearsFuture()
        futures.append(f)
        return f
    run = FusedRun([('map', (step,)), ('map', (lambda v: v * 10,))], SYNC)
    out, errs, needs_finish, waiting = run.push([1, 2])
    assert (out, errs, needs_finish, waiting) == ([], [], True, True)
    # the host now calls finish() on a worker; the futures are resolved meanwhile
    threading.Timer(0.01, futures[0].continueRun, (1,)).start()
    threading.Timer(0.02, futures[1].continueFailed, ('no',)).start()
    assert run.finish() == ([10], ['no'])


def test_sync_execution_refuses_coroutines(fake):
    async def step(x):
        return x

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        fake.state['async_allowed'] = False
        out, errs = run_all([('map', (step,))], [[1]], SYNC)
        out2, errs2 = run_all([('map', (step,))], [[1]], NOTB)
        gc.collect()
    assert out == [] and out2 == []
    assert errs == errs2 == ['GearsError: Coroutine is not allowed on sync execution']
    assert not [x for x in w if 'never awaited' in str(x.message)]


def test_stateful_step_never_waits_on_the_main_thread(fake):
    async def seq(a, r):
        return a + r
    fake.state['main_thread'] = True  # a sync run allowed to move still may not wait here
    out, errs = run_all([('aggregate_local', (0, seq))], [[1]], SYNC)
    assert out == []
    assert errs == ['GearsError: Coroutine is not allowed on sync execution']


def _abort_thread_later(ident, delay):
    """Raises ExecutionAborted asynchronously in thread ``ident`` after ``delay`` seconds,
    as the host does on RG.ABORTEXECUTION."""
    def fire():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(_gears.ExecutionAborted))
    t = threading.Timer(delay, fire)
    t.start()
    return t


def test_abort_while_waiting_for_futures(fake):
    """An abort while the loop waits (blocked polling, a coroutine sleeping) is seen within
    a wait slice; the sleeping coroutine is cancelled."""
    started = threading.Event()
    cancelled = threading.Event()

    async def forever(x):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    run = FusedRun([('map', (forever,))], NOTB)
    assert run.push([1])[:3] == ([], [], True)
    assert not started.is_set()  # coroutines only run in finish()
    timer = _abort_thread_later(threading.get_ident(), 0.2)
    t0 = time.monotonic()
    with pytest.raises(_gears.ExecutionAborted):
        run.finish()
    timer.join()
    assert started.is_set() and cancelled.is_set()
    assert time.monotonic() - t0 < 5


def test_abort_before_the_loop_runs_closes_the_coroutines(fake):
    ran = []

    async def step(x):
        ran.append(x)

    def abort():
        raise _gears.ExecutionAborted('abort')

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        run = FusedRun([('map', (step,))], NOTB)
        run.push([1, 2])
        fake.state['release_hook'] = abort
        with pytest.raises(_gears.ExecutionAborted):
            run.finish()
        gc.collect()
    assert ran == []
    assert not [x for x in w if 'never awaited' in str(x.message)]


def test_abort_stops_a_spinning_async_step_and_later_runs_work(fake):
    """An `async def` step that never awaits runs on the thread calling finish(), so the
    host's abort stops it; nothing keeps running and later async steps still run."""
    coros = []
    cancelled = threading.Event()
    deadline = time.monotonic() + 10  # never hang the test suite

    async def spin(x):
        while time.monotonic() < deadline:
            pass
        return 'not stopped'

    async def sleeper(x):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def step(x):
        c = spin(x) if x == 1 else sleeper(x)
        coros.append(c)
        return c

    run = FusedRun([('map', (step,))], NOTB)
    assert run.push([1, 2])[:3] == ([], [], True)
    timer = _abort_thread_later(threading.get_ident(), 0.2)
    t0 = time.monotonic()
    with pytest.raises(_gears.ExecutionAborted):
        run.finish()
    timer.join()
    assert time.monotonic() - t0 < 5
    assert cancelled.is_set()
    assert [inspect.getcoroutinestate(c) for c in coros] == ['CORO_CLOSED', 'CORO_CLOSED']
    assert asyncio._get_running_loop() is None

    async def double(x):
        await asyncio.sleep(0)
        return x * 2
    assert run_all([('map', (double,))], [[1, 2]]) == ([2, 4], [])


def test_abort_landing_in_a_loop_callback_still_escapes(fake):
    """A loop callback's exception is normally logged by asyncio: an abort must not be."""
    cancelled = threading.Event()

    def boom():
        raise _gears.ExecutionAborted('abort')

    async def step(x):
        asyncio.get_running_loop().call_soon(boom)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    run = FusedRun([('map', (step,))], NOTB)
    run.push([1])
    t0 = time.monotonic()
    with pytest.raises(_gears.ExecutionAborted):
        run.finish()
    assert time.monotonic() - t0 < 5 and cancelled.is_set()


def test_abort_while_a_stateful_step_awaits_inline(fake):
    async def seq(a, r):
        while True:
            await asyncio.sleep(0.01)

    run = FusedRun([('aggregate_local', (0, seq))], NOTB)
    timer = _abort_thread_later(threading.get_ident(), 0.2)
    with pytest.raises(_gears.ExecutionAborted):
        run.push([1])
    timer.join()
    assert run_all([('aggregate_local', (0, lambda a, r: a + r))], [[1, 2]]) == ([3], [])


def test_async_steps_run_concurrently_on_the_calling_thread(fake):
    idents = []

    async def slow(x):
        idents.append(threading.get_ident())
        await asyncio.sleep(0.2)
        return x

    async def slower(x):
        await asyncio.sleep(0.2)
        return x + 10

    t0 = time.monotonic()
    out, errs = run_all([('map', (slow,)), ('map', (slower,))], [[1, 2, 3], [4]])
    assert (out, errs) == ([11, 12, 13, 14], [])
    assert time.monotonic() - t0 < 0.8  # 4 records x 2 steps x 0.2 s if run one by one
    assert set(idents) == {threading.get_ident()}


def test_async_step_releases_the_lock_slice_before_blocking(fake):
    async def step(x):
        _gears.execute('set', 'k', x)
        await asyncio.sleep(0.05)
        return x

    assert run_all([('map', (step,))], [[1]]) == ([1], [])
    names = [c[0] for c in fake.calls]
    k = names.index('execute')
    assert 'release_lock_slice' in names[k:]


def test_futures_and_coroutines_mixed(fake):
    def fut(x):
        f = gearsFuture()
        threading.Timer(0.05, f.continueRun, (x * 10,)).start()
        return f

    async def coro(x):
        await asyncio.sleep(0.01)
        return x + 1

    steps = [('map', (lambda x: fut(x) if x % 2 else coro(x),)),
             ('map', (lambda x: coro(x) if x > 5 else fut(x),))]
    assert run_all(steps, [[1, 2, 3, 4]]) == ([11, 30, 31, 50], [])


def test_async_timings_with_profile():
    async def slow(x):
        await asyncio.sleep(0.05)
        return x
    run = FusedRun([('map', (slow,)), ('map', (lambda x: x,))], PROF)
    run.push([1, 2])
    assert run.finish() == ([1, 2], [])
    t = run.timings()
    assert 40_000_000 <= t[0] < 1_000_000_000


def test_wait_is_sliced(fake, monkeypatch):
    """finish() waits in slices, so an abort raised between slices is seen."""
    monkeypatch.setattr(_fused, '_WAIT_SLICE', 0.01)
    f = gearsFuture()
    run = FusedRun([('map', (lambda x: f,))], NOTB)
    run.push([1])
    threading.Timer(0.1, f.continueRun, ('late',)).start()
    assert run.finish() == (['late'], [])
    assert [c for c in fake.calls if c[0] == 'release_lock_slice'] == [('release_lock_slice', ())]


# --- timings ---------------------------------------------------------------------------

def test_timings_zero_without_profile():
    run = FusedRun([('map', (lambda x: time.sleep(0.001) or x,)),
                    ('accumulate', (lambda a, r: r,))], NOTB)
    run.push([1, 2])
    run.finish()
    assert run.timings() == [0, 0]


def test_timings_with_profile():
    run = FusedRun([('map', (lambda x: time.sleep(0.002) or x,)),
                    ('filter', (lambda x: True,)),
                    ('batchgroupby_local', (lambda r: r, lambda k, rs: time.sleep(0.002)))],
                   PROF)
    run.push([1, 2])
    t1 = run.timings()
    run.push([3])
    run.finish()
    t = run.timings()
    assert len(t) == 3
    assert t[0] >= 6_000_000 and t[0] > t1[0]
    assert 0 < t[1] < t[0]
    assert t[2] >= 6_000_000


# --- construction errors ---------------------------------------------------------------

def test_bad_steps_rejected():
    with pytest.raises(ValueError, match='unknown fused step'):
        FusedRun([('nope', ())], NOTB)
    with pytest.raises(TypeError, match='must be callable'):
        FusedRun([('map', (3,))], NOTB)
    with pytest.raises(TypeError, match='takes 2'):
        FusedRun([('localgroupby', (len,))], NOTB)


# --- GeneratorReader -------------------------------------------------------------------

def test_generator_reader():
    calls = []

    def gen():
        calls.append(1)
        yield from range(5)
    r = GeneratorReader(gen)
    assert calls == []
    assert r.next(2) == [0, 1]
    assert r.next(2) == [2, 3]
    assert r.next(2) == [4]
    assert r.next(2) == []
    assert r.next(2) == []
    assert calls == [1]


def test_generator_reader_accepts_function_returning_iterable_and_propagates():
    assert GeneratorReader(lambda: [1, 2, 3]).next(10) == [1, 2, 3]

    def bad():
        yield 1
        raise RuntimeError('reader broke')
    r = GeneratorReader(bad)
    with pytest.raises(RuntimeError, match='reader broke'):
        r.next(5)
    with pytest.raises(_gears.ExecutionAborted):
        GeneratorReader(lambda: aborting(1)).next(1)


# --- combiners (the local half of countby / count inside the run) ------------------------

COUNTBY = dict(NOTB, combine='countby')


def test_countby_combiner_emits_one_partial_per_key_per_batch():
    run = FusedRun([('flatmap', (lambda s: s.split(','),))], COUNTBY)
    out, errs, _ = run.push(['a,b', 'a,c', 'b'])[:3]
    assert out == [{'key': 'a', 'value': 2}, {'key': 'b', 'value': 2},
                   {'key': 'c', 'value': 1}]
    assert errs == []
    assert run.push(['c'])[0] == [{'key': 'c', 'value': 1}]
    assert run.finish() == ([], [])


def test_countby_combiner_keeps_first_seen_order_around_other_records():
    out, _ = run_all([], [['a', 1, 'a', 'b', [1]]], COUNTBY)
    assert out == [{'key': 'a', 'value': 1}, {'key': 1, 'value': 1},
                   {'key': 'a', 'value': 1}, {'key': 'b', 'value': 1},
                   {'key': [1], 'value': 1}]


def test_countby_combiner_drops_failed_records_only():
    def f(x):
        if x == 'bad':
            raise ValueError('no')
        return x
    out, errs = run_all([('map', (f,))], [['x', 'bad', 'x']], COUNTBY)
    assert out == [{'key': 'x', 'value': 2}]
    assert len(errs) == 1


def test_count_combiner_counts_each_batch():
    run = FusedRun([('filter', (lambda x: x > 1,))], dict(NOTB, combine='count'))
    assert run.push([1, 2, 3])[0] == [2]
    assert run.push([0])[0] == []
    assert run.finish() == ([], [])


def test_unknown_combiner_is_refused():
    with pytest.raises(ValueError):
        FusedRun([], dict(NOTB, combine='median'))
