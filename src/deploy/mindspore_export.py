"""MINDIR (and, on Ascend, AIR) export through ``mindspore.export`` with dynamic batch, height and width."""
import os
import tempfile

import mindspore as ms
import numpy as np
from mindspore import Tensor

from src.deploy.verify import Tolerance, write_verified
from src.files import atomic_path

MINDIR_TOLERANCE = Tolerance(1e-5)  # the same graph compiled again: equal up to kernel scheduling


def _export(net, path, file_format):
    # [None, 3, None, None]: one file serves any batch and image size (measured: outputs equal at every shape)
    ms.export(net, Tensor(shape=[None, 3, None, None], dtype=ms.float32), file_name=path, file_format=file_format)
    written = f'{path}.{file_format.lower()}'
    if os.path.exists(written) and written != path:  # mindspore appends the extension when it is missing
        os.replace(written, path)


def _run_mindir(path, x):
    return ms.nn.GraphCell(ms.load(path))(Tensor(x)).asnumpy()


def export_mindspore(net, path, x, file_format):
    """Write ``net`` to ``path`` (.mindir, or .air on Ascend) and verify it."""
    reference = net(Tensor(x)).asnumpy().astype(np.float64)
    if file_format == 'MINDIR':
        return write_verified(path, lambda tmp: _export(net, tmp, 'MINDIR'), _run_mindir, x, reference,
                              MINDIR_TOLERANCE, 'MINDIR reloaded by MindSpore')
    # AIR loads only in Ascend tools (ATC), not in MindSpore: the same graph is verified as MINDIR first
    with tempfile.TemporaryDirectory() as folder:
        result = write_verified(os.path.join(folder, 'graph.mindir'), lambda tmp: _export(net, tmp, 'MINDIR'),
                                _run_mindir, x, reference, MINDIR_TOLERANCE, 'the graph as MINDIR before AIR')
    with atomic_path(path) as tmp:
        _export(net, tmp, 'AIR')
    return result
