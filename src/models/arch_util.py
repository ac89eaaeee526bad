"""Building blocks shared by the SR architectures (BasicSR's ``arch_util`` in MindSpore).

MindSpore's ``nn.Conv2d`` defaults differ from PyTorch's (``pad_mode='same'``, ``has_bias=False``);
``make_conv`` pins the PyTorch behaviour so checkpoints trained in PyTorch load without surprises.
"""
from mindspore import nn


def make_conv(in_channels, out_channels, kernel_size=3):
    """3×3 (by default) convolution, stride 1, zero padding k//2, with bias — as in PyTorch SR code."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, pad_mode='pad',
                     padding=kernel_size // 2, has_bias=True)


class ResidualBlockNoBN(nn.Cell):
    """``x + res_scale * conv2(relu(conv1(x)))`` (EDSR / SRResNet block without batch norm)."""

    def __init__(self, num_feat=64, res_scale=1.0):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = make_conv(num_feat, num_feat)
        self.relu = nn.ReLU()
        self.conv2 = make_conv(num_feat, num_feat)

    def construct(self, x):
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


def make_layer(block, num_blocks, **kwargs):
    """``num_blocks`` copies of ``block(**kwargs)`` in a SequentialCell (parameter names ``{i}.…``)."""
    return nn.SequentialCell([block(**kwargs) for _ in range(num_blocks)])


class Upsample(nn.SequentialCell):
    """Sub-pixel upsampler: ×2^n as n × [conv F→4F, pixel-shuffle 2]; ×3 as [conv F→9F, pixel-shuffle 3].

    ``nn.PixelShuffle`` uses PyTorch's channel order (output (c, h·r+i, w·r+j) reads input channel
    c·r² + i·r + j); ``ops.DepthToSpace`` does not, so it must not be used here.
    """

    def __init__(self, scale, num_feat):
        layers = []
        if scale & (scale - 1) == 0:
            for _ in range(scale.bit_length() - 1):
                layers += [make_conv(num_feat, 4 * num_feat), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [make_conv(num_feat, 9 * num_feat), nn.PixelShuffle(3)]
        else:
            raise ValueError(f'scale {scale} is not supported: use 2, 3 or 4')
        super().__init__(layers)
