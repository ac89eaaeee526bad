"""Fake quantization: the quantizer Cell, the quantized conv, conversion of a float net, statistics."""
