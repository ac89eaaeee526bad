"""``build_net``: the one place that maps an architecture name to a network."""
from src.models.edsr import EDSR
from src.models.msrresnet import MSRResNet

# name -> (class, constructor arguments); widths/depths are the published ones.
ARCHS = {
    'edsr_baseline': (EDSR, dict(num_feat=64, num_block=16, res_scale=1.0)),
    'edsr': (EDSR, dict(num_feat=256, num_block=32, res_scale=0.1)),
    'msrresnet': (MSRResNet, dict(num_feat=64, num_block=16)),
}
ARCH_NAMES = {'edsr_baseline': 'EDSR-baseline', 'edsr': 'EDSR', 'msrresnet': 'MSRResNet'}  # for people
SCALES = (2, 3, 4)


def build_net(arch, scale, **overrides):
    """Full-precision network ``arch`` ('edsr_baseline', 'edsr', 'msrresnet') for ×``scale``.

    ``overrides`` change constructor arguments (e.g. ``num_feat=8, num_block=2`` for tiny test nets).
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch '{arch}': choose one of {', '.join(ARCHS)}")
    if scale not in SCALES:
        raise ValueError(f'scale {scale} is not supported: use 2, 3 or 4')
    cls, kwargs = ARCHS[arch]
    return cls(upscale=scale, **{**kwargs, **overrides})
