"""ONNX export: the float network, or the integer model of a fake-quantized one, written, reloaded in
onnxruntime and compared with MindSpore before the file appears (``write_verified``)."""
import onnx
from mindspore import Tensor

from src.deploy.onnx_net import FLOAT_OUTPUT_CONVS, build_onnx
from src.deploy.onnx_ops import FloatOps, IntegerOps
from src.deploy.ort_forward import OrtForward
from src.deploy.requant import observe_output_ranges
from src.deploy.verify import Tolerance, write_verified

FLOAT_TOLERANCE = Tolerance(1e-4)
INTEGER_TOLERANCE = Tolerance(mean_of_range=0.05)  # see export_integer_onnx


def _run_onnx(path, x):
    return OrtForward(path, threads=1)(x)


def export_float_onnx(net, path, x, metadata):
    model, _ = build_onnx(net, FloatOps, metadata)
    return write_verified(path, lambda tmp: onnx.save(model, tmp), _run_onnx, x, net(Tensor(x)).asnumpy(),
                          FLOAT_TOLERANCE, 'float ONNX in onnxruntime')


def integer_model(qnet, batches, make_observer, metadata, threads=0):
    """(ModelProto, requant bounds) of the fake-quantized ``qnet``: a first walk writes the model with float
    conv outputs returned as extra outputs, observers (``make_observer()``) on the calibration ``batches`` give
    their bounds, and a second walk writes the model with them requantized (except ``FLOAT_OUTPUT_CONVS``)."""
    probe, ops = build_onnx(qnet, IntegerOps, metadata, probe_float_outputs=True)
    tensors = {layer: t for layer, t in ops.float_outputs.items() if layer not in FLOAT_OUTPUT_CONVS}
    ranges = observe_output_ranges(probe, tensors, batches, make_observer, threads)
    model, _ = build_onnx(qnet, lambda graph: IntegerOps(graph, ranges), metadata)
    return model, ranges


def export_integer_onnx(qnet, path, x, batches, make_observer, metadata, threads=0):
    """Write the integer model of ``qnet`` (a network on the integer grid, ``int_zero_point``) and verify it
    against ``qnet``. They cannot agree element by element: two conv kernels sum in different orders, so a
    value within float rounding of a rounding boundary lands on the neighbouring level now and then, and
    each flipped level perturbs the layers after it (measured on a 48×48 calibration crop, x4: 7e-6 of
    body.1's inputs flip, 10 % by body.15 at W4A4; output mean |diff| 0.002 at W8A8, 0.01–0.03 at W4A4).
    So the check bounds the mean difference (a wrong graph is off by ~0.1 or more); the test-set PSNR of
    the two is what must agree, and eval_onnx.py measures it."""
    model, _ = integer_model(qnet, batches, make_observer, metadata, threads)
    return write_verified(path, lambda tmp: onnx.save(model, tmp), _run_onnx, x, qnet(Tensor(x)).asnumpy(),
                          INTEGER_TOLERANCE, 'integer ONNX in onnxruntime')
