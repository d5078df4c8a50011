"""The PEP 517 build backend of `pip install ./python-shim`: a pure-Python wheel of the
`gears` package, built here with the standard library only, so installing needs no
network and no setuptools or wheel in the target environment."""

import base64
import hashlib
import os
import re
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'gears'


def _project():
    with open(os.path.join(ROOT, 'pyproject.toml')) as f:
        text = f.read()
    project = text.split('[project]', 1)[1].split('\n[', 1)[0]

    def field(name):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % name, project, re.M)
        return m.group(1) if m else ''
    return field('name'), field('version'), field('description'), field('requires-python')


def _dist_name(name):
    return re.sub(r'[^A-Za-z0-9.]+', '_', name)


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, summary, requires_python = _project()
    dist = '%s-%s' % (_dist_name(name), version)
    info = dist + '.dist-info'
    files = []
    for base, dirs, names in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for n in sorted(names):
            # the modules, their stubs (.pyi) and the PEP 561 marker (py.typed): a type
            # checker reads the installed package's hints
            if n.endswith(('.py', '.pyi')) or n == 'py.typed':
                path = os.path.join(base, n)
                files.append((os.path.relpath(path, ROOT), open(path, 'rb').read()))
    files.append((info + '/METADATA', (
        'Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\nRequires-Python: %s\n'
        % (name, version, summary, requires_python)).encode()))
    files.append((info + '/WHEEL', b'Wheel-Version: 1.0\nGenerator: gears_backend\n'
                                   b'Root-Is-Purelib: true\nTag: py3-none-any\n'))
    record = []
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=')
        record.append('%s,sha256=%s,%d' % (path, digest.decode(), len(data)))
    record.append(info + '/RECORD,,')
    files.append((info + '/RECORD', ('\n'.join(record) + '\n').encode()))
    wheel = dist + '-py3-none-any.whl'
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), 'w',
                         zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            z.writestr(path.replace(os.sep, '/'), data)
    return wheel
