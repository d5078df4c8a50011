"""REQUIREMENTS: Python packages a session needs, installed with pip (the host's side).

Each requirement (a pip spec such as ``six`` or ``requests==2.31.0``) gets a folder of its
own under the requirements root (the module's ``gears-requirements`` folder unless
PythonRequirementsDir says otherwise)::

    <root>/<name>-<hash of the spec>/
        wheels/      the wheels of the requirement and its dependencies (pip wheel)
        site/        the installed packages (on sys.path once installed)
        INSTALLED    written last: the folder is complete

A folder is built under a temporary name and renamed into place whole, so a failed or
interrupted install leaves nothing behind, and servers sharing a root (tests, several
shards on one machine) never see a half-installed one: the first rename wins, the others
use it. ``make build`` does not touch the root.

Packages come from the package index (PythonIndexUrl, or pip's default), or only from a
folder of wheels (PythonWheelsDir) on machines that reach no index.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

_MARK = 'INSTALLED'


def python_binary():
    """The interpreter this module embeds, as a program (sys.executable is Redis here)."""
    name = 'python%d.%d' % sys.version_info[:2]
    for prefix in (sys.base_exec_prefix, sys.exec_prefix, sys.base_prefix):
        path = os.path.join(prefix, 'bin', name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name) or shutil.which('python3')


def folder_name(spec):
    """The folder of a requirement: readable, and unique per spec."""
    readable = re.sub(r'[^A-Za-z0-9._-]+', '_', spec)[:60]
    return '%s-%s' % (readable, hashlib.sha256(spec.encode()).hexdigest()[:12])


def folder(root, spec):
    return os.path.join(root, folder_name(spec))


def is_installed(root, spec):
    return os.path.isfile(os.path.join(folder(root, spec), _MARK))


def wheels(root, spec):
    """The files pip downloaded for an installed requirement (sorted)."""
    d = os.path.join(folder(root, spec), 'wheels')
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def _pip(args, timeout, own_sources=False):
    """Runs pip. With `own_sources`, the sources the arguments name are the only ones:
    the environment's pip settings (PIP_FIND_LINKS, PIP_INDEX_URL...) do not add any."""
    cmd = [python_binary(), '-m', 'pip', '--disable-pip-version-check', '--no-input'] + args
    env = dict(os.environ)
    # The packages go where we say, never into the user's or the interpreter's site.
    env.pop('PIP_TARGET', None)
    env.pop('PIP_USER', None)
    env['PYTHONNOUSERSITE'] = '1'
    if own_sources:
        for name in ('PIP_FIND_LINKS', 'PIP_INDEX_URL', 'PIP_EXTRA_INDEX_URL', 'PIP_NO_INDEX'):
            env.pop(name, None)
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError('pip took more than %d seconds' % timeout) from None
    except OSError as e:
        raise RuntimeError('pip could not start: %s' % e) from None
    if done.returncode != 0:
        out = done.stdout.decode('utf-8', 'replace').strip().splitlines()
        tail = ' | '.join(line.strip() for line in out[-4:] if line.strip())
        raise RuntimeError(tail or 'pip failed (exit code %d)' % done.returncode)


def _sources(index_url, wheels_dir):
    if wheels_dir:
        return ['--no-index', '--find-links', wheels_dir]
    if index_url:
        return ['--index-url', index_url]
    return []


def _build(root, spec, index_url, wheels_dir, timeout):
    """Downloads and installs `spec` into a new temporary folder; returns it."""
    tmp = tempfile.mkdtemp(prefix='.tmp-%s-' % folder_name(spec), dir=root)
    try:
        w = os.path.join(tmp, 'wheels')
        site = os.path.join(tmp, 'site')
        os.mkdir(w)
        # Wheels of the requirement and its dependencies (a source-only package is built
        # here, its build tools coming from the same sources), then an offline install
        # from them: what is installed is exactly what RG.PYEXPORTREQ hands over.
        _pip(['wheel', '--wheel-dir', w] + _sources(index_url, wheels_dir) + [spec], timeout,
             own_sources=bool(index_url or wheels_dir))
        _pip(['install', '--no-index', '--find-links', w, '--target', site, '--no-compile',
              spec], timeout, own_sources=True)
        with open(os.path.join(tmp, _MARK), 'w') as f:
            f.write(spec + '\n')
        return tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _put_in_place(root, spec, tmp, force):
    final = folder(root, spec)
    if force and os.path.isdir(final):
        trash = tempfile.mkdtemp(prefix='.old-', dir=root)
        os.rename(final, os.path.join(trash, 'x'))
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(tmp, final)
    except OSError:
        # Another server installed it meanwhile: use theirs.
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_installed(root, spec):
            raise


def use(root, spec):
    """Puts an installed requirement on sys.path (once)."""
    site = os.path.join(folder(root, spec), 'site')
    if site not in sys.path:
        sys.path.append(site)


def ensure(root, specs, force=False, index_url='', wheels_dir='', timeout=300):
    """Installs every requirement of `specs` that is not installed yet (all of them with
    `force`), then puts them all on sys.path. Raises RuntimeError naming the first that
    failed; those installed before it stay installed (they are whole)."""
    os.makedirs(root, exist_ok=True)
    for spec in specs:
        if force or not is_installed(root, spec):
            try:
                tmp = _build(root, spec, index_url, wheels_dir, timeout)
                _put_in_place(root, spec, tmp, force)
            except Exception as e:
                raise RuntimeError('Failed install requirement %s: %s' % (spec, e)) from None
    for spec in specs:
        use(root, spec)
    _forget_stale_imports()


def _forget_stale_imports():
    import importlib
    importlib.invalidate_caches()


def missing(root, specs):
    """The requirements of `specs` that are not installed."""
    return [s for s in specs if not is_installed(root, s)]


def export(root, spec):
    """[(file name, bytes)] of an installed requirement's downloads."""
    d = os.path.join(folder(root, spec), 'wheels')
    out = []
    for name in wheels(root, spec):
        with open(os.path.join(d, name), 'rb') as f:
            out.append((name, f.read()))
    return out


def import_(root, spec, files, timeout=300):
    """Installs `spec` from the given [(file name, bytes)] alone (no index)."""
    os.makedirs(root, exist_ok=True)
    src = tempfile.mkdtemp(prefix='.import-', dir=root)
    try:
        for name, data in files:
            if os.path.basename(name) != name or name.startswith('.'):
                raise RuntimeError('bad file name in the requirement: %r' % name)
            with open(os.path.join(src, name), 'wb') as f:
                f.write(data)
        ensure(root, [spec], force=True, wheels_dir=src, timeout=timeout)
    finally:
        shutil.rmtree(src, ignore_errors=True)
