"""EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017)."""
import numpy as np
from mindspore import Tensor, nn

from src.models.arch_util import ResidualBlockNoBN, Upsample, make_conv, make_layer

RGB_MEAN = (0.4488, 0.4371, 0.4040)


class EDSR(nn.Cell):
    """EDSR with BasicSR cell names and BasicSR / EDSR-PyTorch arithmetic.

    The image enters in [0, 1]; the network works on ``(x - rgb_mean) * img_range`` (0..255 scale) and
    returns ``y / img_range + rgb_mean``. This replaces EDSR-PyTorch's ``sub_mean``/``add_mean`` 1×1
    convs by the same affine map, and differs from the MindSpore model zoo's EDSR, which scales by
    1/255: activation magnitudes (hence quantization bounds) follow the PyTorch convention.

    Args:
        num_feat (int): channels F (64 baseline, 256 full).
        num_block (int): residual blocks B (16 baseline, 32 full).
        upscale (int): 2, 3 or 4.
        res_scale (float): residual scaling (1 baseline, 0.1 full).
        img_range (float): internal pixel range (255).
        rgb_mean (tuple[float]): per-channel mean subtracted before the first conv.
        num_in_ch, num_out_ch (int): image channels (3).
    """

    def __init__(self, num_feat=64, num_block=16, upscale=4, res_scale=1.0, img_range=255.0,
                 rgb_mean=RGB_MEAN, num_in_ch=3, num_out_ch=3):
        super().__init__()
        self.upscale = upscale
        self.img_range = img_range
        self.mean = Tensor(np.array(rgb_mean, np.float32).reshape(1, -1, 1, 1))
        self.conv_first = make_conv(num_in_ch, num_feat)
        self.body = make_layer(ResidualBlockNoBN, num_block, num_feat=num_feat, res_scale=res_scale)
        self.conv_after_body = make_conv(num_feat, num_feat)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = make_conv(num_feat, num_out_ch)

    def construct(self, x):
        return self.forward_features(x)[0]

    def forward_features(self, x):
        """(output, [output of each residual block]); PaC compares the block outputs."""
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res, feats = x, []
        for block in self.body:
            res = block(res)
            feats.append(res)
        res = self.conv_after_body(res) + x
        x = self.conv_last(self.upsample(res))
        return x / self.img_range + self.mean, feats
