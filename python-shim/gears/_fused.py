"""Fused runs: the Python side of the engine's hot path (see CONTRACT.md).

The host turns every maximal run of consecutive Python steps into one ``FusedRun`` and
hands it batches of records. Each record travels depth-first through all the steps (record
1 leaves the last step before record 2 enters the first), as in RedisGears 1.2, so side
effects of consecutive steps interleave per record.

Implementation notes
- At construction every step becomes a closure ``h(record)`` that calls its user function
  and hands the result to the next step's closure; the last one appends to the output
  list. No per-record lookup of the step kind, no timing calls unless profiling (then each
  user function is wrapped by a timing wrapper).
- A user function's exception (any BaseException except ``_gears.ExecutionAborted`` and
  ``_gears.PanicException``) drops
  that record only: other records of the batch, and siblings produced by a flatmap, go on.
- Group keys: the extracted value is the dict key when it is hashable; an unhashable value
  (list, dict, set, tuple holding a list...) is grouped by its ``repr()`` (two unhashable
  keys with the same repr are one group; the first one seen is the reported key). With
  ``KEYS_AS_STR = True`` keys are converted like RedisGears 1.2 did (str kept, anything
  else replaced by its ``repr()``, also in the emitted ``{'key': k}``).
- ``async def`` steps: the coroutine is parked unstarted; finish() runs the parked ones
  together on an event loop owned by the run, on the calling (worker) thread, so the
  host's asynchronous ExecutionAborted reaches them (``FusedRun._settle``). There is no
  shared loop thread: a coroutine that never awaits only blocks its own execution.
"""

import asyncio
import copy
import os
import selectors
import threading
import traceback
import types
from collections import deque
from itertools import islice
from time import perf_counter_ns
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import _gears  # the native module's types (gears/_gears.pyi)
else:
    import _gears

from . import _profile
from . import runtime as _runtime
from .runtime import GearsFlatError, GearsFuture

__all__ = ['FusedRun', 'GeneratorReader', 'KEYS_AS_STR']

# Stop the whole run, never only a record: an abort, and a panic of the host (a bug
# caught in Rust code a step called: the run fails with an internal error).
_Aborted = (_gears.ExecutionAborted, getattr(_gears, 'PanicException', _gears.ExecutionAborted))

# False: group by the extracted value itself (repr fallback for unhashable values).
# True: RedisGears 1.2 behaviour, keys are str (non-str keys become their repr()).
KEYS_AS_STR = True

_CoroutineType = types.CoroutineType
_PARK = frozenset((GearsFuture, _CoroutineType))
_UNHASHABLE = object()  # tags repr-based keys so they never equal a user key

_WAIT_SLICE = 0.1  # seconds: longest blocking wait before looking at aborts again


# ---------------------------------------------------------------------------------------
# error formatting

_THIS_FILE = os.path.normcase(os.path.abspath(__file__))
_RUNTIME_FILE = os.path.normcase(os.path.abspath(_runtime.__file__))
_SKIP_DIRS = tuple(
    os.path.normcase(os.path.dirname(os.path.abspath(m.__file__))) + os.sep  # type: ignore
    for m in (asyncio,)
) + (os.path.normcase(os.path.dirname(os.path.abspath(threading.__file__))) +
     os.sep + 'concurrent' + os.sep,)


def _shim_frame(filename):
    fn = os.path.normcase(os.path.abspath(filename)) if filename[:1] != '<' else filename
    return fn == _THIS_FILE or fn == _RUNTIME_FILE or fn.startswith(_SKIP_DIRS)


class _PlainError(Exception):
    """A failure given as a non-exception value (continueFailed('text')): shown as is."""

    def __init__(self, text):
        Exception.__init__(self, text)
        self.text = text


def _format_error(e, with_tb):
    """``Type: message``, plus ``\\n`` and the traceback (without the shim's own frames)
    when with_tb and the exception has user frames."""
    if type(e) is _PlainError:
        return e.text
    if type(e) is GearsFlatError:
        return str(e)
    try:
        msg = str(e)
    except Exception:
        msg = '<unprintable %s object>' % type(e).__name__
    head = '%s: %s' % (type(e).__name__, msg)
    if with_tb:
        tb = e.__traceback__
        while tb is not None and _shim_frame(tb.tb_frame.f_code.co_filename):
            tb = tb.tb_next
        if tb is not None:
            try:
                text = ''.join(traceback.format_exception(type(e), e, tb)).rstrip('\n')
            except Exception:
                text = None
            if text:
                return head + '\n' + text
    return head


def _failure_exception(value):
    if isinstance(value, BaseException):
        return value
    return _PlainError(str(value))


# ---------------------------------------------------------------------------------------
# `async def` steps: their coroutines run on the thread calling push()/finish(), on an
# event loop owned by the FusedRun (see FusedRun._settle)

class _Selector(selectors.DefaultSelector):
    """The loop's selector: gives the Redis lock slice back before every blocking poll (a
    coroutine may have called execute() just before awaiting something slow)."""

    def select(self, timeout=None):
        if timeout is None or timeout > 0:
            _gears.release_lock_slice()
        return selectors.DefaultSelector.select(self, timeout)


class _Done(object):
    """A settled coroutine in the pending queue (same fields as a resolved GearsFuture)."""

    __slots__ = ('_ok', '_value')

    def __init__(self, ok, value):
        self._ok = ok
        self._value = value


def _close_quietly(coro):
    try:
        coro.close()
    except BaseException:
        pass


def _wait(fut):
    """Block until a GearsFuture's state is resolved, in slices so an abort is seen."""
    ev = fut._event
    if not ev.is_set():
        _gears.release_lock_slice()
        wait = ev.wait
        while not wait(_WAIT_SLICE):
            pass


# ---------------------------------------------------------------------------------------
# per-step closure factories: f(ctx, i, args, nxt) -> (handler, flush or None)
# ctx: the FusedRun (for on_error / park / sync)

def _mk_map(run, i, args, nxt):
    f, = args
    on_error = run._on_error
    park = run._park
    PARK = _PARK

    def post(r, v):
        nxt(v)

    def h(r):
        try:
            v = f(r)
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        if type(v) in PARK:
            park(v, post, r, i)
            return
        nxt(v)

    return h, None


def _mk_flatmap(run, i, args, nxt):
    f, = args
    on_error = run._on_error
    park = run._park
    PARK = _PARK

    def post(r, v):
        if isinstance(v, (list, tuple)):
            for x in v:
                nxt(x)
        else:
            nxt(v)

    def h(r):
        try:
            v = f(r)
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        if isinstance(v, (list, tuple)):
            for x in v:
                nxt(x)
        elif type(v) in PARK:
            park(v, post, r, i)
        else:
            nxt(v)

    return h, None


def _mk_filter(run, i, args, nxt):
    f, = args
    on_error = run._on_error
    park = run._park
    PARK = _PARK

    def post(r, v):
        try:
            if not v:
                return
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        nxt(r)

    def h(r):
        try:
            v = f(r)
            if type(v) in PARK:
                park(v, post, r, i)
                return
            if not v:
                return
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        nxt(r)

    return h, None


def _mk_foreach(run, i, args, nxt):
    f, = args
    on_error = run._on_error
    park = run._park
    PARK = _PARK

    def post(r, v):
        nxt(r)

    def h(r):
        try:
            v = f(r)
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        if type(v) in PARK:
            park(v, post, r, i)
            return
        nxt(r)

    return h, None


def _mk_accumulate(run, i, args, nxt, zero=None, has_zero=False):
    f = args[-1]
    on_error = run._on_error
    resolve = run._resolve_inline
    PARK = _PARK
    a = None
    seen = False

    def h(r):
        nonlocal a, seen
        try:
            cur = a
            if not seen and has_zero:
                cur = copy.deepcopy(zero)
            v = f(cur, r)
            if type(v) in PARK:
                v = resolve(v, i)
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        a = v
        seen = True

    def flush():
        nonlocal a, seen
        if seen:
            v = a
            a = None
            seen = False
            nxt(v)

    return h, flush


def _mk_aggregate_local(run, i, args, nxt):
    zero, f = args
    return _mk_accumulate(run, i, (f,), nxt, zero=zero, has_zero=True)


def _unhashable_key(k):
    """The dict key of an unhashable group key: its repr, tagged so it never equals a
    user key."""
    return (_UNHASHABLE, repr(k))


def _emit_groups(groups, nxt):
    items = list(groups.values())
    groups.clear()
    for k, a in items:
        nxt({'key': k, 'value': a})


def _mk_localgroupby(run, i, args, nxt, zero=None, has_zero=False, by_value=False):
    """localgroupby(extract, reduce): a = reduce(k, a, r), a starts None.
    aggregateby_local(extract, zero, seq): same with a starting as deepcopy(zero).
    aggregateby_global(zero, comb): records {'key': k, 'value': v}; a = comb(k, a, v)."""
    if by_value:
        extract = None
        f = args[-1]
    else:
        extract = args[0]
        f = args[-1]
    on_error = run._on_error
    resolve = run._resolve_inline
    as_str = KEYS_AS_STR
    PARK = _PARK
    groups = {}  # dict key -> [reported key, accumulator]
    get = groups.get

    def h(r):
        try:
            if by_value:
                k = r['key']
                val = r['value']
            else:
                k = extract(r)
                val = r
                if type(k) in PARK:
                    k = resolve(k, i)
            if as_str and type(k) is not str:
                k = repr(k)
            dk = k
            try:
                ent = get(dk)
            except TypeError:
                dk = _unhashable_key(k)
                ent = get(dk)
            if ent is None:
                cur = copy.deepcopy(zero) if has_zero else None
            else:
                cur = ent[1]
            v = f(k, cur, val)
            if type(v) in PARK:
                v = resolve(v, i)
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        if ent is None:
            groups[dk] = [k, v]
        else:
            ent[1] = v

    def flush():
        _emit_groups(groups, nxt)

    return h, flush


def _mk_aggregateby_local(run, i, args, nxt):
    extract, zero, seq = args
    return _mk_localgroupby(run, i, (extract, seq), nxt, zero=zero, has_zero=True)


def _mk_aggregateby_global(run, i, args, nxt):
    zero, comb = args
    return _mk_localgroupby(run, i, (comb,), nxt, zero=zero, has_zero=True, by_value=True)


def _mk_batchgroupby_local(run, i, args, nxt):
    extract, reduce = args
    on_error = run._on_error
    resolve = run._resolve_inline
    as_str = KEYS_AS_STR
    PARK = _PARK
    groups = {}  # dict key -> [reported key, [records]]
    get = groups.get

    def h(r):
        try:
            k = extract(r)
            if type(k) in PARK:
                k = resolve(k, i)
            if as_str and type(k) is not str:
                k = repr(k)
            dk = k
            try:
                ent = get(dk)
            except TypeError:
                dk = _unhashable_key(k)
                ent = get(dk)
        except _Aborted:
            raise
        except BaseException as e:
            on_error(e)
            return
        if ent is None:
            groups[dk] = [k, [r]]
        else:
            ent[1].append(r)

    def flush():
        items = list(groups.values())
        groups.clear()
        for k, records in items:
            try:
                v = reduce(k, records)
                if type(v) in PARK:
                    v = resolve(v, i)
            except _Aborted:
                raise
            except BaseException as e:
                on_error(e)
                continue
            nxt({'key': k, 'value': v})

    return h, flush


# op -> (factory, positions of the user functions in args, positions that may be None)
_OPS = {
    'map': (_mk_map, (0,)),
    'flatmap': (_mk_flatmap, (0,)),
    'filter': (_mk_filter, (0,)),
    'foreach': (_mk_foreach, (0,)),
    'accumulate': (_mk_accumulate, (0,)),
    'aggregate_local': (_mk_aggregate_local, (1,)),
    'localgroupby': (_mk_localgroupby, (0, 1)),
    'batchgroupby_local': (_mk_batchgroupby_local, (0, 1)),
    'aggregateby_local': (_mk_aggregateby_local, (0, 2)),
    'aggregateby_global': (_mk_aggregateby_global, (1,)),
}
_NARGS = {
    'map': 1, 'flatmap': 1, 'filter': 1, 'foreach': 1, 'accumulate': 1,
    'aggregate_local': 2, 'localgroupby': 2, 'batchgroupby_local': 2,
    'aggregateby_local': 3, 'aggregateby_global': 2,
}


def _timed(f, times, i):
    def timed(*args):
        t0 = perf_counter_ns()
        try:
            return f(*args)
        finally:
            times[i] += perf_counter_ns() - t0
    return timed


def _combiner(kind, out):
    """The last sink of a run: ``out.append``, or the local half of a two-phase
    aggregate (``combine`` option) that keeps one partial per key until ``emit()`` (at
    the end of each push and of finish). Partials come out in first-seen order:

    - 'countby': ``{'key': record, 'value': n}`` per distinct str record; any other
      record flushes the counts so far and goes out as its own partial (count 1), so the
      order and the grouping stay those of the engine's native countby.
    - 'count': the number of records, as one int.
    """
    if kind is None:
        return out.append, None
    if kind == 'countby':
        counts = {}
        get = counts.get

        def emit():
            if counts:
                out.extend([{'key': k, 'value': n} for k, n in counts.items()])
                counts.clear()

        def count(v):
            if type(v) is str:
                counts[v] = get(v, 0) + 1
            else:
                emit()
                out.append({'key': v, 'value': 1})
        return count, emit
    if kind == 'count':
        seen = [0]

        def emit():
            if seen[0]:
                out.append(seen[0])
                seen[0] = 0

        def count(v):
            seen[0] += 1
        return count, emit
    raise ValueError('unknown combiner %r' % (kind,))


class FusedRun(object):
    """One run of consecutive Python steps over batches of records (see CONTRACT.md)."""

    __slots__ = ('_profile', '_tb', '_sync', '_times', '_out', '_errors', '_pending',
                 '_ncoro', '_loop', '_aborted', '_flushers', '_entry', '_on_error',
                 '_emit', '_session', '__weakref__')

    def __init__(self, steps, options=None):
        options = options or {}
        self._profile = profile = bool(options.get('profile'))
        self._tb = tb = bool(options.get('traceback'))
        self._sync = bool(options.get('sync'))
        steps = list(steps)
        n = len(steps)
        self._times = times = [0] * n
        self._out = out = []
        self._errors = errors = []
        self._pending = deque()  # (_FutureState | coroutine | _Done, post, record, step)
        self._ncoro = 0          # coroutines in _pending (not started yet)
        self._loop = None        # this run's event loop, created on first coroutine
        self._aborted = None     # ExecutionAborted caught by the loop's machinery
        # RG.PYPROFILE: the session whose steps these are, profiled while profiling is on
        self._session = _profile.session_of(steps) if profile else None

        def on_error(e):
            errors.append(_format_error(e, tb))
        self._on_error = on_error

        flushers = [None] * n
        nxt, self._emit = _combiner(options.get('combine'), out)
        for i in range(n - 1, -1, -1):
            step = steps[i]
            try:
                op, args = step
            except (TypeError, ValueError):
                raise TypeError('step %d: expected an (op, args) tuple, got %r' % (i, step))
            spec = _OPS.get(op)
            if spec is None:
                raise ValueError('step %d: unknown fused step %r' % (i, op))
            factory, fpos = spec
            args = list(args)
            if len(args) != _NARGS[op]:
                raise TypeError('step %d: %s takes %d argument(s), got %d'
                                % (i, op, _NARGS[op], len(args)))
            for p in fpos:
                if not callable(args[p]):
                    raise TypeError('step %d: %s argument %d must be callable, got %s'
                                    % (i, op, p + 1, type(args[p]).__name__))
                if profile:
                    args[p] = _timed(args[p], times, i)
            h, flush = factory(self, i, tuple(args), nxt)
            flushers[i] = flush
            nxt = h
        self._entry = nxt
        self._flushers = [f for f in flushers if f is not None]

    # -- helpers used by the step closures (rare paths) --

    def _park(self, v, post, r, i):
        """A step returned a gearsFuture or a coroutine: park the record. A coroutine is
        kept as is (not started) until finish() drives it. On the main thread only a
        run that may move to the pool parks (``_gears.is_async_allowed``): push() then
        says records wait, and the host calls finish() on a worker."""
        if type(v) is _CoroutineType:
            if not _gears.is_async_allowed():
                v.close()
                self._on_error(_gears.GearsError(
                    'Coroutine is not allowed on sync execution'))
                return
            self._ncoro += 1
        elif not _gears.is_async_allowed():
            self._on_error(_gears.GearsError('Future object is not allowed on sync execution'))
            return
        else:
            v = v._st  # not the future itself: user code may let go of it (GearsFuture)
            v._parked = True
        self._pending.append((v, post, r, i))

    def _resolve_inline(self, v, i):
        """A stateful step's function returned a future/coroutine: wait for it here
        (its next record depends on it). Raises the failure."""
        # The main thread never waits: a stateful step's future cannot move the run.
        blocked = _gears.on_main_thread() or not _gears.is_async_allowed()
        while type(v) in _PARK:
            if type(v) is _CoroutineType:
                if blocked:
                    v.close()
                    raise _gears.GearsError('Coroutine is not allowed on sync execution')
                if self._profile:
                    t0 = perf_counter_ns()
                    (ok, v, _), = self._settle([v])
                    self._times[i] += perf_counter_ns() - t0
                else:
                    (ok, v, _), = self._settle([v])
                if not ok:
                    raise v
                continue
            if blocked:
                raise _gears.GearsError('Future object is not allowed on sync execution')
            v = v._st
            v._parked = True
            if self._profile:
                t0 = perf_counter_ns()
                _wait(v)
                self._times[i] += perf_counter_ns() - t0
            else:
                _wait(v)
            if not v._ok:
                raise _failure_exception(v._value)
            v = v._value
        return v

    def _drain(self):
        """Settles the pending records in order and continues each through the rest of
        the steps (which may park it again). Coroutines are run together, concurrently:
        when one is at the head of the queue, or before blocking on a gearsFuture."""
        pending = self._pending
        profile = self._profile
        times = self._times
        on_error = self._on_error
        while pending:
            fut, post, r, i = pending[0]
            t = type(fut)
            if t is not _Done:
                if t is _CoroutineType or (self._ncoro and not fut._event.is_set()):
                    self._settle_pending()
                    continue
                if profile:
                    t0 = perf_counter_ns()
                    _wait(fut)
                    times[i] += perf_counter_ns() - t0
                else:
                    _wait(fut)
            pending.popleft()
            if fut._ok:
                v = fut._value
                if type(v) in _PARK:
                    self._park(v, post, r, i)
                else:
                    post(r, v)
            else:
                on_error(_failure_exception(fut._value))

    def _settle_pending(self):
        """Runs every coroutine of the pending queue; each entry becomes a _Done in place.
        When profiling, each step is charged the time a FIFO wait would have taken."""
        pending = self._pending
        entries = list(pending)
        ks = [k for k, e in enumerate(entries) if type(e[0]) is _CoroutineType]
        self._ncoro = 0
        last = perf_counter_ns() if self._profile else 0
        results = self._settle([entries[k][0] for k in ks])
        times = self._times
        for k, (ok, v, t) in zip(ks, results):
            _, post, r, i = entries[k]
            entries[k] = (_Done(ok, v), post, r, i)
            if t > last:
                times[i] += t - last
                last = t
        pending.clear()
        pending.extend(entries)

    def _settle(self, coros):
        """Runs the coroutines concurrently on this run's event loop, on the calling
        thread, until all are done. Returns one ``(ok, value, done_ns)`` per coroutine
        (value: the result, or the exception it raised; done_ns only when profiling).

        ``_gears.ExecutionAborted`` raised in this thread meanwhile propagates, wherever it
        lands: in a coroutine (a Task would keep it as its result), in a loop callback (the
        loop would log it), or in the loop itself. The coroutines still running are then
        cancelled (one loop iteration lets them see CancelledError) and closed."""
        n = len(coros)
        if asyncio._get_running_loop() is not None:
            for c in coros:
                c.close()
            e = _gears.GearsError('Coroutine cannot run inside a running event loop')
            return [(False, e, 0)] * n
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.SelectorEventLoop(_Selector())
            loop.set_exception_handler(self._loop_error)
        profile = self._profile
        results = [None] * n
        left = [n]
        tasks = []
        hb = None
        self._aborted = None

        async def one(k, coro):
            try:
                v = await coro
            except _Aborted:
                raise
            except BaseException as e:
                results[k] = (False, e, perf_counter_ns() if profile else 0)
            else:
                results[k] = (True, v, perf_counter_ns() if profile else 0)

        def done(task):
            left[0] -= 1
            if not task.cancelled():
                e = task.exception()
                if e is not None and isinstance(e, _Aborted):
                    if self._aborted is None:
                        self._aborted = e
                    loop.stop()
                    return
            if not left[0]:
                loop.stop()

        def tick():
            # wakes the loop up at least every _WAIT_SLICE so an abort is seen
            nonlocal hb
            hb = loop.call_later(_WAIT_SLICE, tick)

        try:
            _gears.release_lock_slice()
            for k, c in enumerate(coros):
                task = loop.create_task(one(k, c))
                tasks.append(task)
                task.add_done_callback(done)
            hb = loop.call_later(_WAIT_SLICE, tick)
            while left[0] and self._aborted is None:
                loop.run_forever()
            e = self._aborted
            if e is not None:
                self._aborted = None
                raise e
        except BaseException:
            if hb is not None:
                hb.cancel()
                hb = None
            self._kill(tasks, coros)
            raise
        finally:
            if hb is not None:
                hb.cancel()
        for k in range(n):
            if results[k] is None:  # cancelled by the coroutine's own code
                results[k] = (False, asyncio.CancelledError('coroutine was cancelled'), 0)
        return results

    def _loop_error(self, loop, context):
        """The loop's exception handler: an abort that hit a loop callback stops the loop
        and is re-raised by _settle; anything else is logged as asyncio does."""
        e = context.get('exception')
        if isinstance(e, _Aborted) and loop.is_running():
            if self._aborted is None:
                self._aborted = e
            loop.stop()
        else:
            loop.default_exception_handler(context)

    def _kill(self, tasks, coros):
        """After an abort: cancel the unfinished tasks, let them see it for one loop
        iteration, then close whatever is left so nothing keeps running."""
        loop = self._loop
        try:
            live = [t for t in tasks if not t.done()]
            if live:
                for t in live:
                    t.cancel()
                loop.stop()  # run_forever() then runs one iteration
                loop.run_forever()
        except BaseException:
            pass
        finally:
            for t in tasks:
                if t.done():
                    if not t.cancelled():
                        t.exception()  # retrieved: no "never retrieved" log
                else:
                    t._log_destroy_pending = False
                    _close_quietly(t.get_coro())
            for c in coros:
                _close_quietly(c)

    def _cancel_pending(self):
        """Drops the pending records, closing the coroutines not started yet."""
        pending = self._pending
        while pending:
            v = pending.popleft()[0]
            if type(v) is _CoroutineType:
                _close_quietly(v)
        self._ncoro = 0

    def _close_loop(self):
        """End of finish(): finalize the async generators left open, close the loop."""
        loop = self._loop
        if getattr(loop, '_asyncgens', True):
            self._settle([loop.shutdown_asyncgens()])
        self._loop = None
        loop.close()

    def _discard(self):
        """push()/finish() is failing (abort): drop all pending work and the loop."""
        self._cancel_pending()
        loop = self._loop
        if loop is not None:
            self._loop = None
            try:
                loop.close()
            except BaseException:
                pass

    # -- the host's API --

    def push(self, records):
        tls = _runtime._tls
        prev = getattr(tls, 'run', None)
        tls.run = self
        sid = self._session
        prof = _profile.start() if sid is not None else None
        try:
            entry = self._entry
            for r in records:
                entry(r)
        except BaseException:
            self._discard()
            raise
        finally:
            if prof is not None:
                _profile.stop(sid, prof)
            tls.run = prev
        if self._emit is not None:
            self._emit()
        out = self._out
        errors = self._errors
        pending = bool(self._pending)
        res = (out[:], errors[:], bool(self._flushers) or pending, pending)
        del out[:]
        del errors[:]
        return res

    def finish(self):
        tls = _runtime._tls
        prev = getattr(tls, 'run', None)
        tls.run = self
        sid = self._session
        prof = _profile.start() if sid is not None else None
        try:
            self._drain()
            for flush in self._flushers:
                flush()
                self._drain()
            if self._loop is not None:
                self._close_loop()
        except BaseException:
            self._discard()
            raise
        finally:
            if prof is not None:
                _profile.stop(sid, prof)
            tls.run = prev
        if self._emit is not None:
            self._emit()
        out = self._out
        errors = self._errors
        res = (out[:], errors[:])
        del out[:]
        del errors[:]
        return res

    def timings(self):
        return list(self._times)


class GeneratorReader(object):
    """The PythonReader: ``next(n)`` returns up to n items of ``generator_function()``;
    an empty list means the end. Exceptions propagate."""

    __slots__ = ('_fn', '_it', '_done')

    def __init__(self, generator_function):
        if not callable(generator_function):
            raise TypeError('PythonReader expects a generator function, got %s'
                            % type(generator_function).__name__)
        self._fn = generator_function
        self._it = None
        self._done = False

    def next(self, n):
        it = self._it
        if it is None:
            if self._done:
                return []
            it = self._it = iter(self._fn())
        items = list(islice(it, n))
        if not items and n > 0:
            self._it = None
            self._done = True
        return items
