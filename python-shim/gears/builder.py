"""GearsBuilder / GB: records a plan and hands it to the host (see CONTRACT.md)."""

from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Dict, Generator, Iterable, List, Literal,
                    Optional, Tuple, overload)

if TYPE_CHECKING:
    from . import _gears  # the native module's types (gears/_gears.pyi)
else:
    import _gears

# A record: whatever the reader or the step before gave (a key record is a dict).
Record = Any
# The name of a reader, for GearsBuilder(reader=...) ('ShardIDReader' is 1.2's C spelling).
ReaderName = Literal['KeysReader', 'KeysOnlyReader', 'StreamReader', 'ShardsIDReader',
                     'ShardIDReader', 'PythonReader', 'CommandReader', 'TimeReader']
# An execution mode, for run(mode=...) and register(mode=...).
Mode = Literal['async', 'async_local', 'sync']
# A step as the host gets it: (operation, its arguments).
Step = Tuple[str, Tuple[Any, ...]]

__all__ = ['GearsBuilder', 'GB', 'READERS', 'MODES']

READERS = ('KeysReader', 'KeysOnlyReader', 'StreamReader', 'ShardsIDReader',
           'PythonReader', 'CommandReader', 'TimeReader')
# Readers that only register (no batch run()).
_REGISTER_ONLY = ('CommandReader', 'TimeReader')
MODES = ('async', 'async_local', 'sync')

# register() keyword arguments accepted per reader (besides prefix, convertToStr, collect).
_REGISTER_KWARGS = {
    'KeysReader': ('eventTypes', 'keyTypes', 'commands', 'readValue', 'mode', 'onRegistered'),
    'TimeReader': ('interval', 'mode', 'onRegistered'),
    'StreamReader': ('batch', 'duration', 'onFailedPolicy', 'onFailedRetryInterval', 'trimStream',
                     'mode', 'onRegistered'),
    'CommandReader': ('trigger', 'hook', 'keyprefix', 'mode', 'onRegistered'),
}

# run() keyword arguments accepted per reader (besides arg, convertToStr, collect).
_RUN_KWARGS = {
    'KeysReader': ('noScan', 'readValue', 'mode'),
    'KeysOnlyReader': ('count', 'noScan', 'patternGenerator', 'mode'),
    'StreamReader': ('fromId', 'mode'),
    'ShardsIDReader': ('mode',),
    'PythonReader': ('mode',),
}


def _check_callable(method: str, name: str, f: Any) -> None:
    if not callable(f):
        # "argument must be a function" is RedisGears 1.2's text, which tools match.
        raise TypeError('%s(): argument must be a function (%s must be callable, got %s)'
                        % (method, name, type(f).__name__))


def _str_keys(extract: Callable[[Record], Any]) -> Callable[[Record], Any]:
    """countby's extractor with RedisGears 1.2's keys: str (anything else by its repr()),
    as the Python group steps make them (gears._fused.KEYS_AS_STR). countby counts in
    native code, so the extractor converts."""
    from . import _fused
    if not _fused.KEYS_AS_STR:
        return extract

    def key(r: Record) -> Any:
        k = extract(r)
        return k if type(k) is str else repr(k)
    return key


def _check_bool(method: str, name: str, v: Any) -> bool:
    # bool, or an int used as one (0/1), like RedisGears 1.2 accepted
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return bool(v)
    raise TypeError('%s(): %s must be a bool, got %s' % (method, name, type(v).__name__))


def _check_str_list(method: str, name: str, v: Any) -> Optional[List[str]]:
    if v is None:
        return None
    try:
        items = None if isinstance(v, (str, bytes)) else list(v)
    except TypeError:
        items = None
    if items is None or not all(isinstance(x, str) for x in items):
        raise TypeError('%s(): %s must be a list of str' % (method, name))
    return items


def _check_mode(method: str, mode: Any) -> str:
    if mode not in MODES:
        raise ValueError('%s(): unknown execution mode %r (mode must be one of %s)'
                         % (method, mode, ', '.join(MODES)))
    return mode


def _check_str(method: str, name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError('%s(): %s must be a str, got %s' % (method, name, type(v).__name__))
    return v


def _check_count(method: str, name: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError('%s(): %s must be an int, got %s'
                        % (method, name, type(v).__name__))
    if v < minimum:
        if minimum == 0:
            raise ValueError('%s(): %s must be a non-negative int, got %d' % (method, name, v))
        raise ValueError('%s(): %s must be an int >= %d, got %d' % (method, name, minimum, v))
    return v


class GearsBuilder(object):
    """Builds a Gears plan: ``GB(reader='KeysReader', defaultArg='*', desc=None)``.

    Every operation records a step and returns the builder; ``run()`` ends the chain.
    """

    def __init__(self, reader: ReaderName = 'KeysReader', defaultArg: Any = '*',
                 desc: Optional[str] = None) -> None:
        if not isinstance(reader, str):
            raise TypeError('GearsBuilder(): reader must be a str, got %s'
                            % type(reader).__name__)
        if reader == 'ShardIDReader':
            reader = 'ShardsIDReader'  # 1.2's C name of the same reader
        if reader not in READERS:
            raise ValueError('GearsBuilder(): reader does not exists: %r (expected one of %s)'
                             % (reader, ', '.join(READERS)))
        if desc is not None and not isinstance(desc, str):
            raise TypeError('GearsBuilder(): desc must be a str or None, got %s'
                            % type(desc).__name__)
        self.reader: str = reader
        self.defaultArg: Any = defaultArg
        self.desc: Optional[str] = desc
        self.steps: List[Step] = []

    def __repr__(self) -> str:
        return 'GearsBuilder(%r, steps=%s)' % (self.reader, [s[0] for s in self.steps])

    def _add(self, op: str, args: Tuple[Any, ...]) -> GearsBuilder:
        self.steps.append((op, args))
        return self

    # -- local operations --

    def map(self, f: Callable[[Record], Any]) -> GearsBuilder:
        """Each record becomes f(record)."""
        _check_callable('map', 'f', f)
        return self._add('map', (f,))

    def flatmap(self, f: Callable[[Record], Iterable[Any]]) -> GearsBuilder:
        """Each record becomes the items of f(record)."""
        _check_callable('flatmap', 'f', f)
        return self._add('flatmap', (f,))

    def foreach(self, f: Callable[[Record], Any]) -> GearsBuilder:
        """Calls f(record) and passes the record on."""
        _check_callable('foreach', 'f', f)
        return self._add('foreach', (f,))

    def filter(self, f: Callable[[Record], Any]) -> GearsBuilder:
        """Keeps the records for which f(record) is true."""
        _check_callable('filter', 'f', f)
        return self._add('filter', (f,))

    def accumulate(self, f: Callable[[Any, Record], Any]) -> GearsBuilder:
        """One record in the end: a = f(a, record) over every record, a starting at None."""
        _check_callable('accumulate', 'f', f)
        return self._add('accumulate', (f,))

    def localgroupby(self, extract: Callable[[Record], Any],
                     reduce: Callable[[Any, Any, Record], Any]) -> GearsBuilder:
        """Per key of this shard, a = reduce(key, a, record): ``{'key': k, 'value': a}``."""
        _check_callable('localgroupby', 'extract', extract)
        _check_callable('localgroupby', 'reduce', reduce)
        return self._add('localgroupby', (extract, reduce))

    def limit(self, length: int, offset: int = 0) -> GearsBuilder:
        """Keeps `length` records after the first `offset`."""
        _check_count('limit', 'length', length, 0)
        _check_count('limit', 'offset', offset, 0)
        return self._add('limit', (length, offset))

    # -- operations that move records between shards --

    def collect(self) -> GearsBuilder:
        """Brings every shard's records to the one that started the run."""
        return self._add('collect', ())

    def repartition(self, extract: Callable[[Record], Any]) -> GearsBuilder:
        """Moves each record to the shard that owns the key extract(record)."""
        _check_callable('repartition', 'extract', extract)
        return self._add('repartition', (extract,))

    def groupby(self, extract: Callable[[Record], Any],
                reduce: Callable[[Any, Any, Record], Any]) -> GearsBuilder:
        """Per key over all shards, a = reduce(key, a, record): ``{'key': k, 'value': a}``."""
        _check_callable('groupby', 'extract', extract)
        _check_callable('groupby', 'reduce', reduce)
        return self._add('groupby', (extract, reduce))

    def batchgroupby(self, extract: Callable[[Record], Any],
                     reduce: Callable[[Any, List[Record]], Any]) -> GearsBuilder:
        """Per key, reduce(key, records) once over all of its records."""
        _check_callable('batchgroupby', 'extract', extract)
        _check_callable('batchgroupby', 'reduce', reduce)
        return self._add('batchgroupby', (extract, reduce))

    def aggregate(self, zero: Any, seq: Callable[[Any, Record], Any],
                  comb: Callable[[Any, Any], Any]) -> GearsBuilder:
        """One value: seq folds each shard's records from zero, comb folds the shards'."""
        _check_callable('aggregate', 'seq', seq)
        _check_callable('aggregate', 'comb', comb)
        return self._add('aggregate', (zero, seq, comb))

    def aggregateby(self, extract: Callable[[Record], Any], zero: Any,
                    seq: Callable[[Any, Any, Record], Any],
                    comb: Callable[[Any, Any, Any], Any]) -> GearsBuilder:
        """Per key, aggregate: ``{'key': k, 'value': a}``."""
        _check_callable('aggregateby', 'extract', extract)
        _check_callable('aggregateby', 'seq', seq)
        _check_callable('aggregateby', 'comb', comb)
        return self._add('aggregateby', (extract, zero, seq, comb))

    def count(self) -> GearsBuilder:
        """The number of records."""
        return self._add('count', ())

    def countby(self, extract: Optional[Callable[[Record], Any]] = None) -> GearsBuilder:
        """Per key (the record itself by default): ``{'key': k, 'value': n}``."""
        if extract is not None:
            _check_callable('countby', 'extract', extract)
            extract = _str_keys(extract)
        return self._add('countby', (extract,))

    def distinct(self) -> GearsBuilder:
        """Each different record once."""
        return self._add('distinct', ())

    def avg(self, extract: Optional[Callable[[Record], float]] = None) -> GearsBuilder:
        """The average of the records (or of extract(record))."""
        if extract is not None:
            _check_callable('avg', 'extract', extract)
        return self._add('avg', (extract,))

    def sort(self, reverse: bool = False) -> GearsBuilder:
        """The records in order."""
        reverse = _check_bool('sort', 'reverse', reverse)
        return self._add('sort', (reverse,))

    # -- ending the chain --
    #
    # run() and register() take keyword arguments that depend on the reader: the overloads
    # below name them, one per reader, for an IDE and a type checker (at run time only the
    # implementation after them exists, and it checks them per reader).

    @overload
    def run(self, arg: Optional[str] = None, convertToStr: bool = True, collect: bool = True,
            *, noScan: bool = False, readValue: bool = True, mode: Mode = 'async') -> Any:
        """KeysReader: the keys matching the pattern ``arg`` (default: defaultArg) as
        ``{'key', 'value', 'type', 'event'}`` records; noScan: ``arg`` is one key name;
        readValue=False: no 'value' nor 'type'."""

    @overload
    def run(self, arg: Optional[str] = None, convertToStr: bool = True, collect: bool = True,
            *, count: int = 1000, noScan: bool = False,
            patternGenerator: Optional[Callable[[], str]] = None,
            mode: Mode = 'async') -> Any:
        """KeysOnlyReader: the key names matching ``arg``, scanned ``count`` at a time;
        patternGenerator() gives the pattern at run time, on each shard."""

    @overload
    def run(self, arg: Optional[str] = None, convertToStr: bool = True, collect: bool = True,
            *, fromId: str = '0-0', mode: Mode = 'async') -> Any:
        """StreamReader: the entries of stream ``arg`` from ``fromId`` on."""

    @overload
    def run(self, arg: Optional[Callable[[], Iterable[Any]]] = None, convertToStr: bool = True,
            collect: bool = True, *, mode: Mode = 'async') -> Any:
        """PythonReader: the items of the generator function ``arg``; ShardsIDReader
        (``arg`` unused): one record per shard, its id."""

    def run(self, arg: Any = None, convertToStr: bool = True, collect: bool = True,
            **kwargs: Any) -> Any:
        """Run the plan once as a batch. ``arg`` (default: defaultArg) is the key pattern
        (KeysReader, KeysOnlyReader), the stream key (StreamReader) or the generator
        function (PythonReader)."""
        reader = self.reader
        if reader in _REGISTER_ONLY:
            raise ValueError('reader do not support run')
        allowed = _RUN_KWARGS[reader]
        unknown = [k for k in kwargs if k not in allowed]
        if unknown and reader == 'KeysOnlyReader':
            raise TypeError('Unknown arguments were given: %s' % ', '.join(unknown))
        # Other readers ignore unknown keywords, as RedisGears 1.2's run() did (recipes
        # written for it pass e.g. prefix=...); the arg is what selects the keys.

        mode = _check_mode('run', kwargs.get('mode', 'async'))

        # like RedisGears 1.2: any falsy arg (None, '') means defaultArg
        if not arg:
            arg = self.defaultArg

        reader_args: Dict[str, Any]
        if reader == 'KeysReader':
            reader_args = {
                'pattern': _check_str('run', 'pattern', arg),
                'noScan': _check_bool('run', 'noScan', kwargs.get('noScan', False)),
                'readValue': _check_bool('run', 'readValue', kwargs.get('readValue', True)),
            }
        elif reader == 'KeysOnlyReader':
            pg = kwargs.get('patternGenerator', None)
            if pg is not None:
                _check_callable('run', 'patternGenerator', pg)
            reader_args = {
                'pattern': _check_str('run', 'pattern', arg),
                'count': _check_count('run', 'count', kwargs.get('count', 1000), 1),
                'noScan': _check_bool('run', 'noScan', kwargs.get('noScan', False)),
                'patternGenerator': pg,
            }
        elif reader == 'StreamReader':
            reader_args = {
                'key': _check_str('run', 'key', arg),
                'fromId': _check_str('run', 'fromId', kwargs.get('fromId', '0-0')),
            }
        elif reader == 'ShardsIDReader':
            reader_args = {}
        else:  # PythonReader
            if not callable(arg):
                raise TypeError('run(): PythonReader needs a generator function as its '
                                'argument, got %s' % type(arg).__name__)
            reader_args = {'generator': arg}

        steps = list(self.steps)
        if convertToStr:
            steps.append(('map', (str,)))
        if collect:
            steps.append(('collect', ()))
        options = {'mode': mode, 'desc': self.desc, 'convertToStr': bool(convertToStr)}
        eid = _gears.run(reader, reader_args, steps, options)
        if eid is None:
            return None
        # Called by a step: the run goes on in the background; await it for its results.
        return _StepRun(eid)

    @overload
    def register(self, prefix: str = '*', convertToStr: bool = True, collect: bool = True,
                 *, eventTypes: Optional[Iterable[str]] = None,
                 keyTypes: Optional[Iterable[str]] = None,
                 commands: Optional[Iterable[str]] = None, readValue: bool = True,
                 mode: Mode = 'async', onRegistered: Optional[Callable[[], Any]] = None,
                 regex: Optional[str] = None) -> Optional[str]:
        """KeysReader: runs on each keyspace event (of ``eventTypes``, on keys of
        ``keyTypes``) on a key matching ``prefix``; ``commands``: only events of these
        commands, which wait for the run (sync: it may override_reply). ``regex``: the
        deprecated name of prefix."""

    @overload
    def register(self, prefix: str = '*', convertToStr: bool = True, collect: bool = True,
                 *, batch: int = 1, duration: int = 0,
                 onFailedPolicy: Literal['continue', 'abort', 'retry'] = 'continue',
                 onFailedRetryInterval: int = 1, trimStream: bool = True,
                 mode: Mode = 'async', onRegistered: Optional[Callable[[], Any]] = None,
                 regex: Optional[str] = None) -> Optional[str]:
        """StreamReader: runs on the new entries of the streams matching ``prefix``, once
        ``batch`` entries came or ``duration`` ms passed; trimStream: the entries read are
        trimmed. ``regex``: the deprecated name of prefix."""

    @overload
    def register(self, prefix: str = '*', convertToStr: bool = True, collect: bool = True,
                 *, trigger: str, mode: Mode = 'async',
                 onRegistered: Optional[Callable[[], Any]] = None) -> Optional[str]:
        """CommandReader: ``RG.TRIGGER <trigger> args...`` runs the plan on the record
        ``[trigger, args...]`` and replies with its results."""

    @overload
    def register(self, prefix: str = '*', convertToStr: bool = True, collect: bool = True,
                 *, hook: str, keyprefix: Optional[str] = None, mode: Mode = 'sync',
                 onRegistered: Optional[Callable[[], Any]] = None) -> Optional[str]:
        """CommandReader: the plan runs instead of command ``hook`` (on keys starting with
        ``keyprefix``); call_next() runs the command itself."""

    @overload
    def register(self, prefix: str = '*', convertToStr: bool = True, collect: bool = True,
                 *, interval: int, mode: Mode = 'async',
                 onRegistered: Optional[Callable[[], Any]] = None) -> Optional[str]:
        """TimeReader: runs every ``interval`` milliseconds."""

    def register(self, prefix: str = '*', convertToStr: bool = True, collect: bool = True,
                 **kwargs: Any) -> Optional[str]:
        """Bind the plan to events; returns the registration id. ``prefix`` (KeysReader)
        is a key prefix ending in '*', or one exact key name."""
        reader = self.reader
        if 'regex' in kwargs:
            from .runtime import log
            log('Using regex argument with register is deprecated and missleading, use '
                'prefix instead.', level='warning')
            prefix = kwargs.pop('regex')
        allowed = _REGISTER_KWARGS.get(reader)
        if allowed is None:
            raise NotImplementedError('register() of %s is not available yet' % reader)
        unknown = [k for k in kwargs if k not in allowed]
        if unknown:
            raise TypeError('Unknown arguments were given: %s' % ', '.join(unknown))
        mode = _check_mode('register', kwargs.get('mode', 'async'))
        on_registered = kwargs.get('onRegistered', None)
        if on_registered is not None:
            _check_callable('register', 'onRegistered', on_registered)
        reader_args: Dict[str, Any]
        if reader == 'KeysReader':
            reader_args = {
                'commands': _check_str_list('register', 'commands', kwargs.get('commands')),
                'prefix': _check_str('register', 'prefix', prefix or '*'),
                'eventTypes': _check_str_list('register', 'eventTypes', kwargs.get('eventTypes')),
                'keyTypes': _check_str_list('register', 'keyTypes', kwargs.get('keyTypes')),
                'readValue': _check_bool('register', 'readValue', kwargs.get('readValue', True)),
            }
        elif reader == 'StreamReader':
            policy = kwargs.get('onFailedPolicy', 'continue')
            if policy not in ('continue', 'abort', 'retry'):
                raise ValueError("register(): onFailedPolicy must be 'continue', 'abort' or 'retry', "
                                 "got %r" % (policy,))
            if mode == 'sync' and policy != 'continue':
                raise ValueError("register(): sync mode allows only onFailedPolicy='continue'")
            reader_args = {
                'prefix': _check_str('register', 'prefix', prefix or '*'),
                'batch': _check_count('register', 'batch', kwargs.get('batch', 1), 1),
                'duration': _check_count('register', 'duration', kwargs.get('duration', 0), 0),
                'onFailedPolicy': policy,
                'onFailedRetryInterval': _check_count('register', 'onFailedRetryInterval',
                                                      kwargs.get('onFailedRetryInterval', 1), 0),
                'trimStream': _check_bool('register', 'trimStream', kwargs.get('trimStream', True)),
            }
        elif reader == 'TimeReader':
            reader_args = {'interval': _check_count('register', 'interval', kwargs.get('interval'), 1)}
        else:  # CommandReader
            hook, trigger = kwargs.get('hook'), kwargs.get('trigger')
            if hook is None and trigger is None:
                raise TypeError('register(): no trigger or hook argument was given '
                                '(CommandReader needs either trigger=name or hook=command)')
            if hook is not None and trigger is not None:
                raise TypeError('register(): trigger argument can not be given with keyprefix '
                                'or hook (CommandReader needs either trigger=name or hook=command)')
            if hook is not None:
                if 'mode' not in kwargs:
                    mode = 'sync'  # hooks run in sync mode by default
                reader_args = {'hook': _check_str('register', 'hook', hook)}
                keyprefix = kwargs.get('keyprefix')
                if keyprefix is not None:
                    reader_args['keyprefix'] = _check_str('register', 'keyprefix', keyprefix)
            else:
                if kwargs.get('keyprefix') is not None:
                    raise TypeError('register(): trigger argument can not be given with keyprefix '
                                    'or hook (keyprefix goes with hook=command)')
                reader_args = {'trigger': _check_str('register', 'trigger', trigger)}
        steps = list(self.steps)
        if convertToStr:
            steps.append(('map', (str,)))
        if collect:
            steps.append(('collect', ()))
        options = {'mode': mode, 'desc': self.desc, 'convertToStr': bool(convertToStr),
                   'onRegistered': on_registered}
        return _gears.register(reader, reader_args, steps, options)


def _arity_checked(method: Callable[..., GearsBuilder]) -> Callable[..., GearsBuilder]:
    """A step method that refuses a wrong number of arguments with RedisGears 1.2's
    "wrong number of args" (plus what Python says is wrong)."""
    import functools
    import inspect
    sig = inspect.signature(method)

    @functools.wraps(method)
    def checked(self: GearsBuilder, *args: Any, **kwargs: Any) -> GearsBuilder:
        try:
            sig.bind(self, *args, **kwargs)
        except TypeError as e:
            raise TypeError('%s(): wrong number of args (%s)' % (method.__name__, e)) from None
        return method(self, *args, **kwargs)
    return checked


for _name in ('map', 'flatmap', 'foreach', 'filter', 'accumulate', 'localgroupby', 'limit',
              'collect', 'repartition', 'groupby', 'batchgroupby', 'aggregate', 'aggregateby',
              'count', 'countby', 'distinct', 'avg', 'sort'):
    setattr(GearsBuilder, _name, _arity_checked(getattr(GearsBuilder, _name)))
del _name

GB = GearsBuilder


class _StepRun(object):
    """What ``GB().run()`` returns inside a step: an awaitable of ``[results, errors]``
    (an ``async def`` step awaits it, as in RedisGears 1.2)."""

    __slots__ = ('id',)

    def __init__(self, eid: str) -> None:
        self.id = eid

    def __await__(self) -> Generator[Any, None, List[List[Any]]]:
        import asyncio
        pause = 0.001
        while True:
            outcome = _gears.take_results(self.id)
            if outcome is not None:
                return outcome
            yield from asyncio.sleep(pause).__await__()
            pause = min(pause * 2, 0.05)

    def __repr__(self) -> str:
        return '<run %s>' % self.id


def registerTE(period: float, callback: Callable[[], Any], key: Any = None) -> Optional[str]:
    """RedisGears 1.2's time event: ``callback()`` every ``period`` seconds, as a
    registration of this script (a TimeReader one: RG.DUMPREGISTRATIONS lists it,
    RG.UNREGISTER removes it, it persists and replicates with its session). Returns its
    id. ``key`` (1.2 kept the event in a key) is accepted and ignored."""
    if not callable(callback):
        raise TypeError('registerTE(): callback must be callable, got %s'
                        % type(callback).__name__)
    try:
        millis = int(float(period) * 1000)
    except (TypeError, ValueError):
        raise TypeError('registerTE(): period must be a number of seconds, got %r'
                        % (period,)) from None
    if millis < 1:
        raise ValueError('registerTE(): period must be positive')
    return GB('TimeReader').foreach(lambda _: callback()).register(interval=millis,
                                                                   mode='async_local')
