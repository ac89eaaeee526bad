"""Bounds of the conv outputs an integer model requantizes, measured on calibration data.

A fused integer conv (QLinearConv) writes uint8, so a conv whose output feeds float arithmetic (a residual
add, a LeakyReLU) is requantized to 8 bits there (``IntegerOps.requant``). The simulation has no quantizer
at these points, so the export calibrates them like PTQ4SR's own 8-bit activations: an observer (DBDC with
the 8-bit clipped mass, ``dbdc_p_8bit``) over the calibration images, so a rare extreme value does not
coarsen the step of a whole tensor. The outputs are read from the integer model itself
before requantization (extra graph outputs), which equals the simulation on the integer grid and runs
~100× faster than MindSpore's PyNative fake quantization.
"""
import numpy as np

from src.deploy.onnx_graph import INPUT
from src.deploy.ort_forward import session_options


def observe_output_ranges(probe_model, tensors, batches, make_observer, threads=0):
    """{layer: (lower, upper)} of ``tensors`` ({layer: graph output name}) of ``probe_model``, each fed to an
    observer of its own (``make_observer()``) batch by batch."""
    import onnxruntime as ort
    session = ort.InferenceSession(probe_model.SerializeToString(), session_options(threads),
                                   providers=['CPUExecutionProvider'])
    observers = {layer: make_observer() for layer in tensors}
    for batch in batches:
        for layer, y in zip(tensors, session.run(list(tensors.values()), {INPUT: batch})):
            observers[layer].update(y)
    return {layer: tuple(float(v) for v in observer.bounds()) for layer, observer in observers.items()}
