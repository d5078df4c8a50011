"""The public `gears` package is typed for an IDE and a type checker: every public callable
carries annotations that resolve, the wheel ships the PEP 561 marker, and (when mypy is
installed) mypy accepts the package and a recipe, and flags a recipe's wrong arguments."""

import glob
import importlib
import inspect
import os
import shutil
import subprocess
import sys
import textwrap
import typing
import zipfile

import pytest

SHIM = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The public modules (gears.__main__ runs the dry run when imported: it has no callables).
PUBLIC_MODULES = ('gears', 'gears.builder', 'gears.runtime', 'gears.redisgears', 'gears.local')


def _public_callables():
    """(qualified name, function) for every public function and method of the package."""
    out = []

    def add(name, f):
        out.append((name, f))

    for modname in PUBLIC_MODULES:
        mod = importlib.import_module(modname)
        names = set(getattr(mod, '__all__', ())) | {n for n in vars(mod) if not n.startswith('_')}
        for name in sorted(names):
            obj = getattr(mod, name)
            if not getattr(obj, '__module__', '').startswith('gears'):
                continue  # a native function, a typing alias, a stdlib class
            if inspect.isfunction(obj):
                add('%s.%s' % (modname, name), obj)
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if not inspect.isfunction(member):
                        continue
                    if attr.startswith('_') and not (attr.startswith('__') and attr.endswith('__')):
                        continue
                    add('%s.%s.%s' % (modname, name, attr), member)
    return out


def _variants(f):
    """The function and, for an @overload'ed one, each of its overloads (Python 3.11+)."""
    get_overloads = getattr(typing, 'get_overloads', None)
    return [f] + (list(get_overloads(inspect.unwrap(f))) if get_overloads else [])


def test_the_public_api_is_found():
    names = {n for n, _ in _public_callables()}
    for expected in ('gears.registerTE', 'gears.log', 'gears.createFuture', 'gears.flat_error',
                     'gears.GearsBuilder.register', 'gears.GearsBuilder.map', 'gears.Log',
                     'gears.runtime.GearsFuture.continueRun', 'gears.atomic.__exit__',
                     'gears.redisgears.atomicCtx.__enter__', 'gears.local.fire',
                     'gears.local.Keyspace.execute', 'gears.local.main'):
        assert expected in names, sorted(names)


@pytest.mark.parametrize('name,f', _public_callables(), ids=lambda v: v if isinstance(v, str) else '')
def test_every_public_callable_is_annotated(name, f):
    for variant in _variants(f):
        sig = inspect.signature(variant)
        params = list(sig.parameters.values())
        if '.' in variant.__qualname__ and params and params[0].name in ('self', 'cls'):
            params = params[1:]
        missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
        assert not missing, '%s: parameters without a type hint: %s' % (name, missing)
        assert sig.return_annotation is not inspect.Signature.empty, \
            '%s: no return type hint' % name
        # the hints resolve (no name that exists for a type checker only)
        typing.get_type_hints(variant)


@pytest.mark.parametrize('name', ['gears.' + n for n in __import__('gears').__all__])
def test_every_name_a_recipe_sees_is_documented(name):
    obj = getattr(sys.modules['gears'], name.split('.', 1)[1])
    if not getattr(obj, '__module__', '').startswith('gears'):
        return  # the native function (its documented signature is in gears/runtime.py)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        assert (obj.__doc__ or '').strip(), '%s has no docstring' % name


def test_the_wheel_carries_the_type_information(tmp_path):
    sys.path.insert(0, os.path.join(SHIM, '_build'))
    try:
        import gears_backend
    finally:
        sys.path.remove(os.path.join(SHIM, '_build'))
    wheel = gears_backend.build_wheel(str(tmp_path))
    with zipfile.ZipFile(str(tmp_path / wheel)) as z:
        names = set(z.namelist())
        record = z.read([n for n in names if n.endswith('.dist-info/RECORD')][0]).decode()
    for path in ('gears/py.typed', 'gears/_gears.pyi', 'gears/builder.py'):
        assert path in names, sorted(names)
        assert path + ',sha256=' in record


def _old_pythons():
    """Interpreters of Python 3.8 / 3.9 here: on PATH, or installed by pyenv."""
    root = os.environ.get('PYENV_ROOT', os.path.expanduser('~/.pyenv'))
    found = []
    for version in ('3.8', '3.9'):
        found += sorted(glob.glob(os.path.join(root, 'versions', version + '.*', 'bin',
                                               'python' + version)))
        exe = shutil.which('python' + version)
        if exe and '/shims/' not in exe:  # a pyenv shim may have no version behind it
            found.append(exe)
    return found


def test_the_package_still_imports_on_the_oldest_python_it_supports():
    """pyproject says requires-python >= 3.8: the hints must not be evaluated there."""
    olds = _old_pythons()
    if not olds:
        pytest.skip('no Python 3.8 or 3.9 here')
    done = subprocess.run([olds[0], '-c', 'import gears, gears.local, gears.redisgears\n'
                           'from gears import GB, local\n'
                           'GB().map(lambda r: r).run()\n'
                           'GB().register(prefix="a:*", mode="sync")\n'
                           'assert local.last_run().results == [] and local.registrations'],
                          cwd=SHIM, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (olds[0], done.stderr)


# -- a real type checker, when this environment has one --------------------------------

def _mypy():
    try:
        done = subprocess.run([sys.executable, '-m', 'mypy', '--version'],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [sys.executable, '-m', 'mypy'] if done.returncode == 0 else None


MYPY = _mypy()
needs_mypy = pytest.mark.skipif(MYPY is None, reason='mypy is not installed')


def _check(*args, cwd=SHIM):
    env = dict(os.environ, MYPYPATH=SHIM)
    return subprocess.run(MYPY + ['--no-incremental', '--no-error-summary', *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


@needs_mypy
def test_mypy_accepts_the_package():
    done = _check('-p', 'gears')
    assert done.returncode == 0, done.stdout + done.stderr


@needs_mypy
def test_mypy_accepts_a_recipe_and_flags_wrong_arguments(tmp_path):
    good = tmp_path / 'good.py'
    good.write_text(textwrap.dedent("""
        import asyncio
        from typing import Any
        from gears import (GB, atomic, configGet, createFuture, execute, gearsFuture,
                           hashtag, log, registerTE, runCoroutine, setFutureResults)
        from gears import local, redisgears
        from gears.runtime import GearsFuture

        def later(r: Any) -> GearsFuture:
            f = gearsFuture()
            runCoroutine(asyncio.sleep(0.1, r), f, delay=0.5)
            return f

        async def step(r: Any) -> Any:
            fut = createFuture()
            setFutureResults(fut, r)
            await GB('ShardsIDReader').run()
            return await fut

        with atomic():
            execute('incr', 'n{%s}' % hashtag())
        with redisgears.atomicCtx():
            log(configGet('executionthreads'), level='warning')
        GB('KeysReader', desc='d').map(later).register(prefix='user:*', eventTypes=['set'],
                                                       mode='sync', onRegistered=lambda: None)
        GB('StreamReader').register('s:*', batch=10, onFailedPolicy='retry')
        GB('CommandReader').register(trigger='T')
        GB('CommandReader').register(hook='set', keyprefix='x:')
        GB('TimeReader').register(interval=1000)
        GB('KeysOnlyReader').run('a*', count=10, patternGenerator=lambda: 'b:*')
        GB('PythonReader').map(step).run(lambda: iter(range(3)))
        registerTE(1.5, lambda: None)
        run = local.last_run()
        print(run.results if run else None, [r.errors for r in local.fire('a')])
    """))
    done = _check(str(good))
    assert done.returncode == 0, done.stdout + done.stderr

    bad = tmp_path / 'bad.py'
    bad.write_text(textwrap.dedent("""
        from gears import GB, log, registerTE
        GB('NoSuchReader')
        GB().map(1)
        GB().register(prefix='a', mode='fast')
        GB().register(prefx='a')
        GB('TimeReader').register(interval='1s')
        GB('KeysOnlyReader').run('a*', count='10')
        registerTE('soon', lambda: None)
        log('x', level=3)
    """))
    done = _check(str(bad))
    flagged = sorted({int(line.split(':')[1]) for line in done.stdout.splitlines()
                      if ': error:' in line})
    assert flagged == list(range(3, 11)), done.stdout
