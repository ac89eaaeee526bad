"""A small ONNX graph writer: unique names, initializers and nodes, then one ``ModelProto``."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# 21: QuantizeLinear/DequantizeLinear with per-axis parameters and every integer type; DepthToSpace has
# had mode CRD (PyTorch's pixel-shuffle order) since 11. onnxruntime 1.32 runs all of it.
OPSET = 21
INPUT, OUTPUT = 'lr', 'sr'


class OnnxGraph:
    """Nodes and initializers in creation order; every tensor name is made unique from a readable base."""

    def __init__(self):
        self.nodes, self.initializers, self._taken = [], [], {INPUT, OUTPUT}

    def name(self, base):
        name, i = base, 1
        while name in self._taken:
            name, i = f'{base}_{i}', i + 1
        self._taken.add(name)
        return name

    def const(self, base, array):
        """An initializer holding ``array`` (its numpy dtype is kept); returns its name."""
        tensor = numpy_helper.from_array(np.asarray(array), self.name(base))
        self.initializers.append(tensor)
        return tensor.name

    def op(self, op_type, inputs, base, **attrs):
        """Append one node with a single output named after ``base``; returns the output name."""
        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def model(self, output, metadata, probes=()):
        """The model from NCHW float32 ``INPUT`` to ``output`` (renamed ``OUTPUT``); N, H and W are symbolic.
        ``probes``: inner float tensors to return as extra outputs (for measuring them)."""
        last = next(node for node in self.nodes if output in node.output)
        last.output[list(last.output).index(output)] = OUTPUT
        outputs = [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ['N', 3, 'H_out', 'W_out'])]
        outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * 4) for name in probes]
        graph = helper.make_graph(
            self.nodes, 'ptq4sr', [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ['N', 3, 'H', 'W'])],
            outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                                  producer_name='ptq4sr-mindspore')
        helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
        onnx.checker.check_model(model)
        return model
