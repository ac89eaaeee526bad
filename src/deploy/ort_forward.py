"""An exported ONNX model in onnxruntime, as a forward (float32 NCHW array → NCHW array, see src/inference)."""
import os

from src.deploy.onnx_graph import INPUT
from src.errors import UserError

PROVIDERS = {'CPU': 'CPUExecutionProvider', 'GPU': 'CUDAExecutionProvider', 'Ascend': 'CANNExecutionProvider'}


def session_options(threads, optimized_path=None):
    """One intra-op pool of ``threads`` and sequential execution (the graph is a chain of convs)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if optimized_path:
        # the fused graph as onnxruntime runs it; EXTENDED keeps the QDQ fusions without the machine-specific
        # NCHWc layout rewrites of ENABLE_ALL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = optimized_path
    return options


class OrtForward:
    """``forward(x)`` runs ``path`` in onnxruntime; ``metadata`` holds what export.py stored in it."""

    def __init__(self, path, threads, device_target='CPU', optimized_path=None):
        import onnxruntime as ort
        if not os.path.isfile(path):
            raise UserError(f'ONNX model {path} does not exist: write it with export.py --file_format ONNX')
        provider = PROVIDERS[device_target]
        if provider not in ort.get_available_providers():
            raise UserError(f'--device_target {device_target} needs onnxruntime\'s {provider}, which this '
                            f'onnxruntime build lacks: install the onnxruntime build for it or use --device_target CPU')
        try:
            self.session = ort.InferenceSession(path, session_options(threads, optimized_path), providers=[provider])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid models
            first = ' '.join(str(e).split())[:160]
            raise UserError(f'{path} is not a model onnxruntime can load ({first}): pass a file written by '
                            'export.py --file_format ONNX') from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, x):
        return self.session.run(None, {INPUT: x})[0]
