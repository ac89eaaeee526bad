"""Bound initialisation: per-channel min/max for weights, an observer per conv input for activations."""
from dataclasses import dataclass

from mindspore import Tensor
from tqdm import tqdm

from src.quant.fake_quant import grad_scale_for
from src.quant.observer import DBDCObserver, MinMaxObserver, PercentileObserver, weight_minmax_per_channel
from src.quant.state import input_quantizers, observing, set_weight_quant, weight_quantizers


@dataclass(frozen=True)
class ObserverSettings:
    """How activation bounds are measured. ``dbdc_p`` applies below 8 bits, ``dbdc_p_8bit`` at 8 (released)."""
    method: str = 'dbdc'
    dbdc_p: float = 1e-4
    dbdc_p_8bit: float = 1e-5
    dbdc_bins: int = 2048
    dbdc_lower_edge: str = 'right'
    percentile_p: float = 1e-4

    def make_observer(self, bits):
        if self.method == 'minmax':
            return MinMaxObserver()
        if self.method == 'percentile':
            return PercentileObserver(self.percentile_p)
        if self.method == 'dbdc':
            p = self.dbdc_p_8bit if bits == 8 else self.dbdc_p
            return DBDCObserver(p, bins=self.dbdc_bins, lower_edge=self.dbdc_lower_edge)
        raise ValueError(f"unknown calibration method '{self.method}': use minmax, percentile or dbdc")


def init_weight_bounds(qnet):
    """Per output channel: the min and max of that channel's weights (no clipping), once."""
    for _, quant, weight in weight_quantizers(qnet):
        quant.set_bounds(*weight_minmax_per_channel(weight.asnumpy()))
        quant.grad_scale = grad_scale_for(weight.size, quant.bits)


def calibrate_act_bounds(qnet, batches, settings):
    """Feed ``batches`` (float32 NCHW arrays) through ``qnet`` with observers on every conv input,
    then set each input quantizer's bounds from its observer. Returns {layer: (lower, upper)}.

    As released, the first batch runs with float weights and later batches with fake-quantized
    weights (a weight quantizer leaves calibration mode after its first call); activations are
    always observed unquantized. This reproduces the reference DBDC bounds to float precision.
    """
    with observing(qnet, settings.make_observer) as observers:
        for i, batch in enumerate(tqdm(batches, desc=f'{settings.method} calibration', unit='batch', leave=False)):
            qnet(Tensor(batch))
            if i == 0:
                set_weight_quant(qnet, True)
    result = {}
    for name, quant in input_quantizers(qnet):
        quant.set_bounds(*observers[name].bounds())
        result[name] = tuple(float(v) for v in observers[name].bounds())
    return result
