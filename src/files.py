"""Output files: writable folders checked up front, and atomic writes (a file appears whole or not at all)."""
import contextlib
import json
import os
import tempfile

from src.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def prepare_output_folder(path, flag='--output_path'):
    """Create ``path`` and check that files can be written there, before any long computation starts."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f'{flag} {path} is a file, not a folder: choose a folder')
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(f'cannot write to {flag} {path} ({e.strerror}): choose a writable folder') from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted run therefore leaves the previous file or nothing, never half of a new one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base, ext = os.path.splitext(os.path.basename(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f'.{base}.', suffix=f'.tmp{ext}', dir=folder)
        os.close(fd)
    except OSError as e:
        raise UserError(f'cannot write to {folder} ({e.strerror}): choose a writable --output_path') from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions of a new file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path, mode='w'):
    """An open file that becomes ``path`` only when the block succeeds (see ``atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if 'b' in mode else 'utf-8') as f:
        yield f


def write_json_atomic(path, data):
    with atomic_output(path) as f:
        json.dump(data, f, indent=1)
        f.write('\n')


def remove_if_present(path):
    if os.path.exists(path):
        os.remove(path)


def state_key(settings, arrays):
    """A digest of what a resume file belongs to (settings and input arrays), so another run's file is ignored."""
    import hashlib
    import numpy as np
    digest = hashlib.sha256(repr(settings).encode())
    for array in arrays:
        digest.update(np.ascontiguousarray(array, np.float32).tobytes())
    return digest.hexdigest()


def save_resume_state(path, key, meta, arrays):
    """``meta`` (JSON-able dict) and named ``arrays`` in one .npz at ``path``, under ``key``, atomically."""
    import numpy as np
    with atomic_output(path, 'wb') as f:
        np.savez(f, meta=np.array(json.dumps({'key': key, **meta})), **arrays)


def load_resume_state(path, key, who, differs, log):
    """(meta, {name: array}) saved by ``save_resume_state`` under ``key``; None when there is no such file,
    and None with a logged reason when it is unreadable or another run's (``differs``: what would differ)."""
    import numpy as np
    if not path or not os.path.isfile(path):
        return None
    try:
        with np.load(path) as f:
            meta = json.loads(str(f['meta']))
            arrays = {k: f[k] for k in f.files if k != 'meta'}
    except (OSError, ValueError, KeyError) as e:
        log(f'{who}: ignoring unreadable resume file {path} ({e}); starting over')
        return None
    if meta.get('key') != key:
        log(f'{who}: {path} belongs to another calibration ({differs} differ); starting over')
        return None
    return meta, arrays
