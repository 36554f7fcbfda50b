"""The two runners behind evaluate/infer (torch) and infer_onnx (onnxruntime), for every task.

A runner maps ``{input name: array}`` to the model's outputs, a list in ``output_names`` order. Both take
the same feeds (token ids for the NLP tasks, features and lengths for speech), so a task's infer and
infer_onnx share one code path and give the same answers.
"""

from __future__ import annotations

from typing import Callable, Dict, List

import numpy as np
import torch

Runner = Callable[[Dict[str, np.ndarray]], List[np.ndarray]]
ONNX_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


def torch_runner(net) -> Runner:
    def run(feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        with torch.inference_mode():
            out = net(*[torch.from_numpy(feeds[name]) for name in net.input_names])
        return [o.float().numpy() if o.is_floating_point() else o.numpy()
                for o in (out if isinstance(out, tuple) else (out,))]
    run.input_names = tuple(net.input_names)
    return run


def onnx_runner(model_bytes: bytes) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    dtypes = {i.name: ONNX_DTYPES.get(i.type, np.float32) for i in session.get_inputs()}

    def run(feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return session.run(names, {k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in feeds.items()})
    run.input_names = tuple(i.name for i in session.get_inputs())
    return run
