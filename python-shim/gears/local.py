"""A local dry run of recipes, outside Redis.

Inside Redis, ``gears`` talks to the module through its native ``_gears``. Imported
anywhere else (an IDE, a test, ``pip install ./python-shim`` in a virtualenv), ``gears``
uses this module instead: a recipe's builder chain is checked as Redis would check it,
``execute()`` answers from an in-memory keyspace, ``run()`` runs the plan here over that
keyspace (or a PythonReader's generator) and keeps its results, and ``register()`` keeps
the registration, which ``fire()`` can then run for a key as a keyspace event would::

    python3 -m gears recipe.py        # runs the script; prints runs and registrations

    from gears import GB, execute
    from gears import local
    local.keyspace.set('user:1', 'ada')
    GB().map(lambda r: r['key']).run('user:*')
    assert local.last_run().results == ['user:1']

What differs from Redis: one process, one shard (collect and repartition change nothing),
no modes or threads (everything runs at once, in order), a subset of commands (strings,
hashes, sets, lists, keys), StreamReader / CommandReader / TimeReader only register.
"""

from __future__ import annotations

import copy
import fnmatch
import sys
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# A step as gears.builder hands it over: (operation, its arguments).
_Step = Tuple[str, Tuple[Any, ...]]

__all__ = ['Keyspace', 'Run', 'keyspace', 'runs', 'registrations', 'logs', 'last_run',
           'fire', 'reset', 'main']


class GearsError(Exception):
    """An error reply, or a failure of the runtime."""


class ExecutionAborted(BaseException):
    """RG.ABORTEXECUTION's interruption (never raised locally)."""


class Keyspace(object):
    """Keys to values: bytes-free Python strings, dicts (hashes), sets and lists."""

    def __init__(self) -> None:
        self.data: Dict[str, Any] = {}

    def set(self, key: str, value: Any) -> Keyspace:
        """Sets string ``key`` to ``str(value)``; returns the keyspace (calls chain)."""
        self.data[key] = str(value)
        return self

    def type_of(self, key: str) -> str:
        """The key's type as TYPE tells it: string, hash, set, list or none."""
        v = self.data.get(key)
        kinds: Dict[type, str] = {str: 'string', dict: 'hash', set: 'set', list: 'list'}
        return kinds.get(type(v), 'none')

    def keys(self, pattern: str = '*') -> List[str]:
        """The key names matching the glob ``pattern``, sorted."""
        return sorted(k for k in self.data if fnmatch.fnmatchcase(k, pattern))

    def _typed(self, key: str, kind: type) -> Any:
        v = self.data.get(key)
        if v is not None and type(v) is not kind:
            raise GearsError('WRONGTYPE Operation against a key holding the wrong kind of value')
        return v

    def execute(self, name: str, *args: Any) -> Any:
        """One command, answered as Redis would through execute()."""
        cmd = name.lower()
        strs = [a if isinstance(a, str) else str(a) for a in args]
        handler = _COMMANDS.get(cmd)
        if handler is None:
            raise GearsError("ERR unknown command '%s' (the local dry run has: %s)"
                             % (name, ', '.join(sorted(_COMMANDS))))
        return handler(self, *strs)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise GearsError('ERR value is not an integer or out of range')


def _incrby(ks: Keyspace, key: str, by: Any) -> int:
    cur = _int(ks._typed(key, str) or 0) + _int(by)
    ks.data[key] = str(cur)
    return cur


def _append(ks: Keyspace, key: str, value: str) -> int:
    ks.data[key] = (ks._typed(key, str) or '') + value
    return len(ks.data[key])


def _hset(ks: Keyspace, key: str, *pairs: str) -> int:
    if not pairs or len(pairs) % 2:
        raise GearsError("ERR wrong number of arguments for 'hset' command")
    h = ks._typed(key, dict)
    if h is None:
        h = ks.data[key] = {}
    new = sum(1 for f in pairs[0::2] if f not in h)
    h.update(zip(pairs[0::2], pairs[1::2]))
    return new


def _sadd(ks: Keyspace, key: str, *members: str) -> int:
    s = ks._typed(key, set)
    if s is None:
        s = ks.data[key] = set()
    before = len(s)
    s.update(members)
    return len(s) - before


def _push(left: bool) -> Callable[..., int]:
    def push(ks: Keyspace, key: str, *values: str) -> int:
        lst = ks._typed(key, list)
        if lst is None:
            lst = ks.data[key] = []
        for v in values:
            if left:
                lst.insert(0, v)
            else:
                lst.append(v)
        return len(lst)
    return push


def _lrange(ks: Keyspace, key: str, start: str, stop: str) -> List[str]:
    lst = ks._typed(key, list) or []
    first, last = _int(start), _int(stop)
    n = len(lst)
    first = max(first + n if first < 0 else first, 0)
    last = last + n if last < 0 else last
    return lst[first:last + 1]


_COMMANDS: Dict[str, Callable[..., Any]] = {
    'ping': lambda ks, *a: a[0] if a else 'PONG',
    'get': lambda ks, k: ks._typed(k, str),
    'set': lambda ks, k, v, *opts: (ks.data.__setitem__(k, v), 'OK')[1],
    'del': lambda ks, *keys: sum(1 for k in keys if ks.data.pop(k, None) is not None),
    'exists': lambda ks, *keys: sum(1 for k in keys if k in ks.data),
    'incr': lambda ks, k: _incrby(ks, k, 1),
    'incrby': _incrby,
    'decr': lambda ks, k: _incrby(ks, k, -1),
    'append': lambda ks, k, v: _append(ks, k, v),
    'strlen': lambda ks, k: len(ks._typed(k, str) or ''),
    'type': lambda ks, k: ks.type_of(k),
    'keys': lambda ks, pattern: ks.keys(pattern),
    'expire': lambda ks, k, s: int(k in ks.data),
    'hset': _hset,
    'hget': lambda ks, k, f: (ks._typed(k, dict) or {}).get(f),
    'hgetall': lambda ks, k: [x for kv in (ks._typed(k, dict) or {}).items() for x in kv],
    'hdel': lambda ks, k, *fs: sum(1 for f in fs if (ks._typed(k, dict) or {}).pop(f, None)
                                   is not None),
    'hlen': lambda ks, k: len(ks._typed(k, dict) or {}),
    'sadd': _sadd,
    'srem': lambda ks, k, *ms: sum(1 for m in ms if m in (ks._typed(k, set) or set())
                                   and (ks.data[k].discard(m) or True)),
    'smembers': lambda ks, k: sorted(ks._typed(k, set) or set()),
    'sismember': lambda ks, k, m: int(m in (ks._typed(k, set) or set())),
    'scard': lambda ks, k: len(ks._typed(k, set) or set()),
    'lpush': _push(True),
    'rpush': _push(False),
    'lrange': _lrange,
    'llen': lambda ks, k: len(ks._typed(k, list) or []),
}


class Run(object):
    """One run() of a plan: what it read, what came out, the errors of the records."""

    def __init__(self, reader: str, results: List[Any], errors: List[str]) -> None:
        self.reader = reader
        self.results = results
        self.errors = errors

    def __repr__(self) -> str:
        return '<run of %s: %d results, %d errors>' % (self.reader, len(self.results),
                                                       len(self.errors))


class _Registration(object):
    """One register() of a plan: its id, reader, reader_args, steps and options."""

    def __init__(self, rid: str, reader: str, reader_args: Dict[str, Any],
                 steps: List[_Step], options: Dict[str, Any]) -> None:
        self.id = rid
        self.reader = reader
        self.args = reader_args
        self.steps = steps
        self.options = options

    def __repr__(self) -> str:
        return '<registration %s of %s %r>' % (self.id, self.reader, self.args)


keyspace = Keyspace()
runs: List[Run] = []
registrations: List[_Registration] = []
logs: List[Tuple[str, str]] = []  # (level, message)
config: Dict[str, str] = {'executionthreads': '3', 'batchsize': '512'}
_lock_depth = [0]


def reset() -> None:
    """Forget the keyspace, runs, registrations and logs."""
    keyspace.data.clear()
    del runs[:], registrations[:], logs[:]


def last_run() -> Optional[Run]:
    """The latest run(), None before any."""
    return runs[-1] if runs else None


def _records(reader: str, args: Dict[str, Any]) -> List[Any]:
    if reader == 'KeysReader':
        out = []
        for k in keyspace.keys(args.get('pattern', '*')):
            r: Dict[str, Any] = {'key': k, 'event': None}
            if args.get('readValue', True):
                v = keyspace.data[k]
                r['value'] = sorted(v) if isinstance(v, set) else copy.copy(v)
                r['type'] = keyspace.type_of(k)
            out.append(r)
        return out
    if reader == 'KeysOnlyReader':
        return keyspace.keys(args.get('pattern', '*'))
    if reader == 'ShardsIDReader':
        return ['0' * 40]
    if reader == 'PythonReader':
        return list(args['generator']())
    raise GearsError('the local dry run does not read %s: register it, and fire() events'
                     % reader)


def _error(e: BaseException) -> str:
    return '%s: %s' % (type(e).__name__, e) if not isinstance(e, GearsError) else str(e)


def _each(records: Iterable[Any], errors: List[str],
          f: Callable[[Any], Iterable[Any]]) -> List[Any]:
    """f(r) -> list of outputs per record; a record whose f raises is dropped."""
    out: List[Any] = []
    for r in records:
        try:
            out.extend(f(r))
        except Exception as e:
            errors.append(_error(e))
    return out


def _grouped(records: Iterable[Any], errors: List[str],
             extract: Callable[[Any], Any]) -> Dict[Any, List[Any]]:
    groups: Dict[Any, List[Any]] = {}
    for r in records:
        try:
            groups.setdefault(extract(r), []).append(r)
        except Exception as e:
            errors.append(_error(e))
    return groups


def _apply(op: str, args: Tuple[Any, ...], records: List[Any], errors: List[str]) -> List[Any]:
    if op == 'map':
        return _each(records, errors, lambda r: [args[0](r)])
    if op == 'flatmap':
        return _each(records, errors, lambda r: list(args[0](r)))
    if op == 'filter':
        return _each(records, errors, lambda r: [r] if args[0](r) else [])
    if op == 'foreach':
        return _each(records, errors, lambda r: (args[0](r), [r])[1])
    if op == 'accumulate':
        acc = None
        for r in records:
            try:
                acc = args[0](acc, r)
            except Exception as e:
                errors.append(_error(e))
        return [acc]
    if op in ('localgroupby', 'groupby'):
        extract, reduce = args
        out = []
        for k, rs in _grouped(records, errors, extract).items():
            acc = None
            for r in rs:
                acc = reduce(k, acc, r)
            out.append({'key': k, 'value': acc})
        return out
    if op == 'batchgroupby':
        extract, reduce = args
        return [{'key': k, 'value': reduce(k, rs)}
                for k, rs in _grouped(records, errors, extract).items()]
    if op == 'aggregate':
        zero, seq, comb = args
        acc = copy.deepcopy(zero)
        for r in records:
            acc = seq(acc, r)
        return [comb(copy.deepcopy(zero), acc)]
    if op == 'aggregateby':
        extract, zero, seq, comb = args
        out = []
        for k, rs in _grouped(records, errors, extract).items():
            acc = copy.deepcopy(zero)
            for r in rs:
                acc = seq(k, acc, r)
            out.append({'key': k, 'value': comb(k, copy.deepcopy(zero), acc)})
        return out
    if op == 'count':
        return [len(records)]
    if op == 'countby':
        extract = args[0] or (lambda r: r if isinstance(r, str) else repr(r))
        return [{'key': k, 'value': len(rs)}
                for k, rs in _grouped(records, errors, extract).items()]
    if op == 'distinct':
        seen, out = set(), []
        for r in records:
            key = repr(r)
            if key not in seen:
                seen.add(key)
                out.append(r)
        return out
    if op == 'avg':
        extract = args[0] or float
        values = _each(records, errors, lambda r: [float(extract(r))])
        return [sum(values) / len(values)] if values else []
    if op == 'sort':
        return sorted(records, key=_sort_key, reverse=args[0])
    if op == 'limit':
        length, offset = args
        return records[offset:offset + length]
    if op in ('collect', 'repartition'):
        return records
    raise GearsError('the local dry run has no step %r' % op)


def _sort_key(v: Any) -> Tuple[int, Any, str]:
    """Numbers before strings, then anything else by its repr (maps and lists too)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v, '')
    if isinstance(v, str):
        return (1, 0, v)
    return (2, 0, repr(v))


def _run_steps(records: List[Any], steps: Iterable[_Step]) -> Tuple[List[Any], List[str]]:
    errors: List[str] = []
    for op, args in steps:
        records = _apply(op, args, records, errors)
    return records, errors


class _Native(object):
    """What ``gears`` finds as ``_gears`` outside Redis."""

    GearsError = GearsError
    ExecutionAborted = ExecutionAborted

    @staticmethod
    def execute(cmd: str, *args: Any) -> Any:
        return keyspace.execute(cmd, *args)

    @staticmethod
    def run(reader: str, reader_args: Dict[str, Any], steps: List[_Step],
            options: Dict[str, Any]) -> None:
        results, errors = _run_steps(_records(reader, reader_args), steps)
        runs.append(Run(reader, results, errors))
        return None

    @staticmethod
    def register(reader: str, reader_args: Dict[str, Any], steps: List[_Step],
                 options: Dict[str, Any]) -> str:
        rid = '%s-%d' % ('0' * 40, len(registrations) + 1)
        registrations.append(_Registration(rid, reader, reader_args, steps, options))
        on_registered = options.get('onRegistered')
        if on_registered is not None:
            on_registered()
        return rid

    @staticmethod
    def take_results(eid: str) -> None:
        return None

    @staticmethod
    def log(msg: str, level: str = 'notice') -> None:
        if level not in ('debug', 'verbose', 'notice', 'warning'):
            raise GearsError('Log level should be one of the following : '
                             'debug,verbose,notice,warning')
        logs.append((level, msg))
        sys.stderr.write('GEARS %s: %s\n' % (level, msg))

    @staticmethod
    def config_get(name: str) -> Optional[str]:
        return config.get(name.lower())

    @staticmethod
    def hashtag() -> str:
        return '{06S}'

    @staticmethod
    def is_async_allowed() -> bool:
        return True

    @staticmethod
    def on_main_thread() -> bool:
        return False

    @staticmethod
    def lock() -> None:
        _lock_depth[0] += 1

    @staticmethod
    def unlock() -> None:
        _lock_depth[0] -= 1

    @staticmethod
    def in_atomic() -> bool:
        return _lock_depth[0] > 0

    @staticmethod
    def release_lock_slice() -> None:
        pass

    @staticmethod
    def call_next(*args: Any) -> Any:
        return keyspace.execute(*args)

    @staticmethod
    def override_reply(value: Any) -> None:
        pass


native = _Native()


def fire(key: str, event: str = 'set') -> List[Run]:
    """Runs every KeysReader registration whose prefix matches `key`, as the event on it
    would in Redis; returns their Runs."""
    out = []
    for reg in registrations:
        if reg.reader != 'KeysReader':
            continue
        prefix = reg.args.get('prefix', '*')
        if not (fnmatch.fnmatchcase(key, prefix) if prefix.endswith('*') else key == prefix):
            continue
        record = {'key': key, 'event': event}
        if reg.args.get('readValue', True) and key in keyspace.data:
            record['value'] = copy.copy(keyspace.data[key])
            record['type'] = keyspace.type_of(key)
        results, errors = _run_steps([record], reg.steps)
        out.append(Run('KeysReader', results, errors))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """python3 -m gears script.py [args...]: runs a recipe here; prints each run's
    results and errors and each registration."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.stderr.write('usage: python3 -m gears script.py [args...]\n')
        return 2
    import gears
    from gears import local as state
    path = argv[0]
    with open(path) as f:
        code = compile(f.read(), path, 'exec')
    session = {name: getattr(gears, name) for name in gears.__all__}
    session.update({'__name__': '__main__', 'sys': sys})
    sys.argv = argv
    try:
        exec(code, session)
    except Exception:
        traceback.print_exc()
        return 1
    for r in state.runs:
        print('run of %s: %r' % (r.reader, [r.results, r.errors]))
    for reg in state.registrations:
        print('registered %s: %s %r' % (reg.id, reg.reader, reg.args))
    return 0

