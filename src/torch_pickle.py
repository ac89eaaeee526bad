"""Read PyTorch ``.pt``/``.pth`` files with the standard library and numpy, never running code from them.

Both layouts written by ``torch.save`` are handled: the zip archive (torch >= 1.6: ``<prefix>/data.pkl`` plus
raw storages ``<prefix>/data/<key>``) and the older stream (magic number, version, sys info, the pickled
object, the storage keys, then each storage as an int64 element count and raw bytes), which the 2018
official EDSR files use. ``_SafeUnpickler`` resolves only ``collections.OrderedDict``, torch's tensor and
parameter rebuild functions, storage classes and dtypes, each to a local stand-in; any other global
(``os.system``, arbitrary classes) is refused. Tensors come back as contiguous numpy arrays.
"""
import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from src.errors import UserError

_DTYPES = {'float64': 'f8', 'float32': 'f4', 'float16': 'f2', 'bfloat16': 'u2', 'int64': 'i8', 'int32': 'i4',
           'int16': 'i2', 'int8': 'i1', 'uint8': 'u1', 'bool': 'b1', 'uint16': 'u2', 'uint32': 'u4', 'uint64': 'u8'}
_STORAGES = {'DoubleStorage': 'float64', 'FloatStorage': 'float32', 'HalfStorage': 'float16',
             'BFloat16Storage': 'bfloat16', 'LongStorage': 'int64', 'IntStorage': 'int32', 'ShortStorage': 'int16',
             'CharStorage': 'int8', 'ByteStorage': 'uint8', 'BoolStorage': 'bool', 'UntypedStorage': 'uint8'}
_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c  # first pickle of torch.save's pre-1.6 stream format


@dataclasses.dataclass(frozen=True)
class _DType:
    name: str  # stands in for torch.<X>Storage / torch.<dtype>; not callable, so REDUCE on it fails


@dataclasses.dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str
    offset: int  # elements; non-zero only for views in the legacy format


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple
    dtype: str


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride), storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, _grad, _hooks, dtype, *_):
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride), dtype.name)


def _rebuild_parameter(data, *_):
    return data


_SAFE_GLOBALS = {('collections', 'OrderedDict'): collections.OrderedDict,
                 ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
                 ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
                 ('torch._utils', '_rebuild_tensor_v3'): _rebuild_tensor_v3,
                 ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
                 ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter}


class _Refused(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler for torch.save output; ``storages`` collects key → dtype of every storage referenced."""

    def __init__(self, file, storages):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in ('torch', 'torch.storage') and name in _STORAGES:
            return _DType(_STORAGES[name])
        if module == 'torch' and name in _DTYPES:
            return _DType(name)
        raise _Refused(f'{module}.{name}')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and _text(pid[0]) == 'storage'
                and isinstance(pid[1], _DType)):
            raise pickle.UnpicklingError(f'unsupported persistent id {str(pid)[:60]}')
        key, view = _text(pid[2]), (pid[5] if len(pid) > 5 else None)  # legacy view: (key, offset, size)
        self.storages.setdefault(key, pid[1].name)
        return _Storage(key, pid[1].name, int(view[1]) if view else 0)


def _text(value):
    return value.decode('ascii') if isinstance(value, bytes) else str(value)


def _np_dtype(name, order):
    return np.dtype(order + _DTYPES[name])


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n == 'data.pkl' or n.endswith('/data.pkl')]
        if len(pickles) != 1:
            raise UserError(f'{path} is a zip archive but not a PyTorch checkpoint (no single data.pkl inside)')
        prefix = pickles[0][:-len('data.pkl')]
        byteorder = archive.read(prefix + 'byteorder') if prefix + 'byteorder' in names else b'little'
        order = '>' if byteorder.strip() == b'big' else '<'
        storages = {}
        obj = _SafeUnpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
        arrays = {key: np.frombuffer(archive.read(f'{prefix}data/{key}'), _np_dtype(dtype, order))
                  for key, dtype in storages.items()}
    return obj, arrays, order


def _load_legacy(stream):
    """torch.save's pre-1.6 format: magic, version, sys info, the object, storage keys, then raw storages."""
    if _SafeUnpickler(stream, {}).load() != _LEGACY_MAGIC:
        raise pickle.UnpicklingError('no PyTorch magic number')
    _SafeUnpickler(stream, {}).load()
    sys_info = _SafeUnpickler(stream, {}).load()
    order = '<' if sys_info.get('little_endian', True) else '>'
    storages = {}
    obj = _SafeUnpickler(stream, storages).load()
    arrays = {}
    for key in map(_text, _SafeUnpickler(stream, {}).load()):
        dtype = _np_dtype(storages[key], order)
        (numel,) = struct.unpack(order + 'q', stream.read(8))
        data = stream.read(numel * dtype.itemsize)
        if len(data) != numel * dtype.itemsize:
            raise EOFError('the file ends inside the tensor data')
        arrays[key] = np.frombuffer(data, dtype)
    return obj, arrays, order


def _to_array(ref, arrays, order):
    flat = arrays[ref.storage.key]
    if ref.dtype != ref.storage.dtype:  # v3: a typed view of an untyped (byte) storage
        flat = flat.view(_np_dtype(ref.dtype, order))
    start, size, stride = ref.storage.offset + ref.offset, ref.size, ref.stride
    if len(size) != len(stride) or any(not isinstance(v, int) or v < 0 for v in (start, *size, *stride)):
        raise ValueError(f'bad tensor layout {size} / {stride}')
    if 0 in size:
        return np.zeros(size, flat.dtype.newbyteorder('='))
    if start + sum((n - 1) * s for n, s in zip(size, stride)) >= flat.size:  # as_strided does not check
        raise ValueError('a tensor reaches past the end of its storage')
    out = np.lib.stride_tricks.as_strided(flat[start:], size, [s * flat.itemsize for s in stride])
    if ref.dtype == 'bfloat16':
        return (out.astype(np.uint32).reshape(-1) << np.uint32(16)).view(np.float32).reshape(size)
    return out.astype(out.dtype.newbyteorder('='), order='C')  # a contiguous copy in native byte order


def _materialize(obj, arrays, order):
    if isinstance(obj, _TensorRef):
        return _to_array(obj, arrays, order)
    if isinstance(obj, dict):
        return {k: _materialize(v, arrays, order) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, arrays, order) for v in obj)
    return obj


def load_torch_file(path):
    """The object saved in a PyTorch ``.pt``/``.pth`` file, tensors as numpy arrays; needs no torch."""
    require_file(path)
    with open(path, 'rb') as f:
        head = f.read(4)
    try:
        if zipfile.is_zipfile(path):
            loaded = _load_zip(path)
        elif head.startswith(b'PK'):
            raise UserError(f'{path} is a damaged or truncated zip archive: download or copy it again')
        else:
            with open(path, 'rb') as f:
                loaded = _load_legacy(io.BytesIO(f.read()))
        return _materialize(*loaded)
    except _Refused as err:
        raise UserError(f'refusing to load {path}: its pickle references {err}, and only tensors and '
                        f'containers are allowed (never unpickle untrusted files)') from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, RecursionError, MemoryError, struct.error, UnicodeDecodeError) as err:
        raise UserError(f'{path} is not a readable PyTorch checkpoint '
                        f"({type(err).__name__}: {' '.join(str(err).split())[:100]})") from None


def require_file(path):
    """UserError unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        raise UserError(f'checkpoint not found: {path} (check the path)')


def is_torch_file(path):
    """Whether ``path`` looks like torch.save output (a zip archive or a protocol-2 pickle stream)."""
    with open(path, 'rb') as f:
        head = f.read(2)
    return head in (b'PK', b'\x80\x02') or zipfile.is_zipfile(path)
