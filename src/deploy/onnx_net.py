"""An EDSR or MSRResNet as an ONNX graph, written op by op from its cells (``build_onnx``).

``mindspore.export(net, x, file_format='ONNX')`` is not used. Measured with MindSpore 2.10: it accepts only a
fixed input shape ("Export ONNX format model not support dynamic shape mode"), writes opset 11 with the pixel
shuffle as fixed Reshape/Transpose, and the fake-quant network exports ``Round`` with an extra input that
onnxruntime rejects. The integer model has to be written from the layers in any case (quantize nodes at the
calibrated bounds, int8 weights), so the float model is written by the same walk with ``FloatOps``: one
writer, dynamic N/H/W and DepthToSpace from the start, and equal to MindSpore within float rounding
(max |diff| ~1e-6 on [0, 1] outputs, checked on every export by src/deploy/verify.py).
"""

from src.deploy.onnx_graph import INPUT, OnnxGraph
from src.models.edsr import EDSR
from src.models.msrresnet import MSRResNet

# Convs whose output stays float in the integer model (a float Conv in onnxruntime, not fused): conv_first
# starts the residual stream and the global skip, conv_after_body feeds the global skip, conv_last writes the
# image. Together ~3 % of EDSR-baseline x4's multiply-adds; requantizing their outputs to 8 bits (min/max bounds)
# cost 0.007, 0.005 and 0.006 dB on Set5 (x4 W8A8 DBDC), the 16 conv2 outputs together 0.001-0.007 dB.
FLOAT_OUTPUT_CONVS = ('conv_first', 'conv_after_body', 'conv_last')


def _residual_block(ops, x, name, block):
    """``x + conv2(relu(conv1(x))) * res_scale`` (the multiply is left out at res_scale 1, where it is exact)."""
    y = ops.conv(ops.relu(ops.conv(x, f'{name}.conv1', block.conv1), f'{name}.relu'), f'{name}.conv2', block.conv2)
    if block.res_scale != 1:
        y = ops.binary('Mul', y, float(block.res_scale), f'{name}.res_scale')
    return ops.binary('Add', x, y, f'{name}.add')


def _edsr(net, ops, x):
    mean = net.mean.asnumpy()
    x = ops.binary('Mul', ops.binary('Sub', x, mean, 'sub_mean'), float(net.img_range), 'to_img_range')
    feat = ops.conv(x, 'conv_first', net.conv_first)
    res = feat
    for i, block in enumerate(net.body):
        res = _residual_block(ops, res, f'body.{i}', block)
    res = ops.binary('Add', ops.conv(res, 'conv_after_body', net.conv_after_body), feat, 'global_skip')
    for i in range(0, len(net.upsample), 2):
        res = ops.pixel_shuffle(ops.conv(res, f'upsample.{i}', net.upsample[i]), f'upsample.{i + 1}',
                                net.upsample[i + 1].upscale_factor)
    out = ops.conv(res, 'conv_last', net.conv_last)
    return ops.binary('Add', ops.binary('Div', out, float(net.img_range), 'from_img_range'), mean, 'add_mean')


def _msrresnet(net, ops, x):
    lrelu, factor = net.lrelu.alpha, net.pixel_shuffle.upscale_factor
    out = ops.leaky_relu(ops.conv(x, 'conv_first', net.conv_first), 'conv_first.lrelu', lrelu)
    for i, block in enumerate(net.body):
        out = _residual_block(ops, out, f'body.{i}', block)
    for name in ('upconv1', 'upconv2'):
        cell = getattr(net, name)
        if cell is not None:
            out = ops.pixel_shuffle(ops.conv(out, name, cell), f'{name}.shuffle', factor)
            out = ops.leaky_relu(out, f'{name}.lrelu', lrelu)
    out = ops.leaky_relu(ops.conv(out, 'conv_hr', net.conv_hr), 'conv_hr.lrelu', lrelu)
    out = ops.conv(out, 'conv_last', net.conv_last)
    return ops.binary('Add', out, ops.bilinear(x, 'base', net.upscale), 'add_base')


def build_onnx(net, make_ops, metadata, probe_float_outputs=False):
    """(ModelProto, ops) of ``net`` written with ``make_ops(graph)`` (FloatOps or IntegerOps); with
    ``probe_float_outputs`` the model also returns the float conv outputs (``IntegerOps.float_outputs``)."""
    graph = OnnxGraph()
    ops = make_ops(graph)
    if isinstance(net, EDSR):
        out = _edsr(net, ops, INPUT)
    elif isinstance(net, MSRResNet):
        out = _msrresnet(net, ops, INPUT)
    else:
        raise ValueError(f'no ONNX writer for {type(net).__name__}: EDSR and MSRResNet are supported')
    out = ops.as_float(out)
    probes = list(ops.float_outputs.values()) if probe_float_outputs else ()
    return graph.model(out, metadata, probes), ops
