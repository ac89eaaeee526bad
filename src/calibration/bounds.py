"""Bound initialisation: per-channel min/max for weights, an observer per conv input for activations."""
from dataclasses import dataclass, replace

from mindspore import Tensor
from tqdm import tqdm

from src.distributed import LOCAL, merge_indexed, shard
from src.quant.fake_quant import grad_scale_for
from src.quant.observer import (DBDCObserver, MinMaxObserver, PercentileObserver, weight_minmax_per_channel,
                                weight_mse_per_channel)
from src.quant.state import input_quantizers, observing, set_weight_quant, weight_quantizers

OBSERVED_METHODS = ('minmax', 'percentile', 'dbdc')


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


class _Fanout:
    """Feeds one conv input to an observer per method, so one pass over the data serves them all."""

    def __init__(self, observers):
        self.observers = observers

    def update(self, x):
        for observer in self.observers.values():
            observer.update(x)


WEIGHT_BOUNDS = ('minmax', 'mse')


def init_weight_bounds(qnet, method='minmax'):
    """Per output channel, once: the min and max of that channel's weights (released: no clipping), or
    with ``'mse'`` the shrunk range with the least squared quantization error (``weight_mse_per_channel``)."""
    for _, quant, weight in weight_quantizers(qnet):
        w = weight.asnumpy()
        quant.set_bounds(*(weight_mse_per_channel(w, quant.bits) if method == 'mse' else weight_minmax_per_channel(w)))
        quant.grad_scale = grad_scale_for(weight.size, quant.bits)


def observe_act_bounds(qnet, batches, settings, methods=None, world=LOCAL):
    """{method: {layer: (lower, upper)}} for ``methods`` (default ``settings.method``), from one pass.

    As released, the first batch runs with float weights and later batches with fake-quantized
    weights (a weight quantizer leaves calibration mode after its first call); activations are
    always observed unquantized. This reproduces the reference DBDC bounds to float precision.
    Input quantizers get their gradient scale from the first batch.

    Data parallel (``world`` of several ranks): each rank observes its share of ``batches`` (batch i on
    rank i % size), then every rank gathers all per-batch bounds and combines them in batch order, so all
    ranks end with the single-process bounds, and with rank 0's gradient scales (it observed batch 0).
    """
    methods = tuple(methods or (settings.method,))
    makers = {m: replace(settings, method=m).make_observer for m in methods}
    mine = shard(len(batches), world.rank, world.size)
    with observing(qnet, lambda bits: _Fanout({m: make(bits) for m, make in makers.items()})) as fanouts:
        for i in tqdm(mine, desc=f"{'+'.join(methods)} calibration", unit='batch', leave=False,
                      disable=not world.is_main):
            set_weight_quant(qnet, i > 0)
            qnet(Tensor(batches[i]))
            fanouts.wait()  # at most one batch of activations in memory
    observed = {m: {layer: list(zip(mine, fan.observers[m].batch_bounds)) for layer, fan in fanouts.items()}
                for m in methods}
    parts = world.all_gather((observed, {name: q.grad_scale for name, q in input_quantizers(qnet)}))
    for name, quant in input_quantizers(qnet):
        quant.grad_scale = parts[0][1][name]
    return {m: {layer: fan.observers[m].combine(merge_indexed([part[0][m][layer] for part in parts]))
                for layer, fan in fanouts.items()} for m in methods}


def apply_act_bounds(qnet, bounds):
    """Set every input quantizer's (lower, upper) from ``{layer: (lower, upper)}``."""
    for name, quant in input_quantizers(qnet):
        quant.set_bounds(*bounds[name])


def calibrate_act_bounds(qnet, batches, settings):
    """Observe ``batches`` (float32 NCHW arrays) with ``settings.method`` and set the input bounds.
    Returns {layer: (lower, upper)}."""
    bounds = observe_act_bounds(qnet, batches, settings)[settings.method]
    apply_act_bounds(qnet, bounds)
    return bounds
