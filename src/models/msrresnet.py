"""MSRResNet (BasicSR's modified SRResNet: no batch norm; Ledig et al., CVPR 2017 / Wang et al., ESRGAN)."""
from mindspore import nn, ops

from src.models.arch_util import ResidualBlockNoBN, make_conv, make_layer


class MSRResNet(nn.Cell):
    """``conv_first → LReLU → 16 blocks → upconv(s)+pixel-shuffle+LReLU → conv_hr → LReLU → conv_last``
    plus a bilinear (half-pixel, ``align_corners=False``) upsampled copy of the input. Works in [0, 1].

    Args:
        num_feat (int): channels (64). num_block (int): residual blocks (16). upscale (int): 2, 3 or 4.
    """

    def __init__(self, num_feat=64, num_block=16, upscale=4, num_in_ch=3, num_out_ch=3):
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f'scale {upscale} is not supported: use 2, 3 or 4')
        self.upscale = upscale
        self.conv_first = make_conv(num_in_ch, num_feat)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat)
        shuffle = 2 if upscale == 4 else upscale
        self.upconv1 = make_conv(num_feat, num_feat * shuffle * shuffle)
        self.upconv2 = make_conv(num_feat, num_feat * 4) if upscale == 4 else None
        self.pixel_shuffle = nn.PixelShuffle(shuffle)
        self.conv_hr = make_conv(num_feat, num_feat)
        self.conv_last = make_conv(num_feat, num_out_ch)
        self.lrelu = nn.LeakyReLU(0.1)

    def construct(self, x):
        return self.forward_features(x)[0]

    def forward_features(self, x):
        """(output, [output of each residual block]); PaC compares the block outputs."""
        out, feats = self.lrelu(self.conv_first(x)), []
        for block in self.body:
            out = block(out)
            feats.append(out)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upconv2 is not None:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        size = (x.shape[2] * self.upscale, x.shape[3] * self.upscale)
        base = ops.interpolate(x, size=size, mode='bilinear', align_corners=False)
        return out + base, feats
