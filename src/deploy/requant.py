"""Bounds of the conv outputs an integer model requantizes: their min/max on calibration data.

A fused integer conv (QLinearConv) writes uint8, so a conv whose output feeds float arithmetic (a residual
add, a LeakyReLU) is requantized to 8 bits there (``IntegerOps.requant``). The simulation has no quantizer
at these points; min/max bounds clip nothing that calibration saw, so only rounding is added. The outputs
are read from the integer model itself before requantization (extra graph outputs), which equals the
simulation on the integer grid and runs ~100× faster than MindSpore's PyNative fake quantization.
"""
import numpy as np

from src.deploy.onnx_graph import INPUT
from src.deploy.ort_forward import session_options


def observe_output_ranges(probe_model, tensors, batches, threads=0):
    """{layer: (min, max)} of ``tensors`` ({layer: graph output name}) of ``probe_model`` over ``batches``."""
    import onnxruntime as ort
    session = ort.InferenceSession(probe_model.SerializeToString(), session_options(threads),
                                   providers=['CPUExecutionProvider'])
    layers, names = list(tensors), list(tensors.values())
    low, high = np.full(len(names), np.inf), np.full(len(names), -np.inf)
    for batch in batches:
        outputs = session.run(names, {INPUT: batch})
        low = np.minimum(low, [float(y.min()) for y in outputs])
        high = np.maximum(high, [float(y.max()) for y in outputs])
    return {layer: (float(lo), float(hi)) for layer, lo, hi in zip(layers, low, high)}
