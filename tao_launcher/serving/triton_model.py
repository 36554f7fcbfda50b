"""The Triton python-backend model of every tao task: the task's own predict step, on onnxruntime, inside Triton.

Triton imports this from each model's ``1/model.py`` (core/triton_repository.py) in its python backend stub, an
interpreter of tao's serving environment (``make serve-env``: numpy<2, onnxruntime, no Lightning). At load
(``initialize``) it reads ``tao_model.json``, decrypts the export in memory with the key from ``TAO_KEY`` (or
the file ``TAO_KEY_FILE`` names; ``tao serve`` passes it) and builds the same ``Loaded`` model that infer_onnx
builds. Each ``execute`` gets the requests Triton's dynamic batcher put together: every request's inputs are
checked alone (a bad one gets its own error, the others their answers), the good ones run as one batch through
the task's ``PredictStep.predict`` and ``rows``, and each input's row goes back as JSON in ``ANSWER``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List

from tao_launcher.errors import TaoError
from tao_launcher.core.triton_repository import ANSWER, ENCRYPTED_MODEL, MODEL_INFO, PLAIN_MODEL

KEY_ENV, KEY_FILE_ENV = "TAO_KEY", "TAO_KEY_FILE"


def serving_key() -> str:
    """The key of an encrypted export: ``TAO_KEY_FILE``'s first line, else ``TAO_KEY``."""
    key_file = os.environ.get(KEY_FILE_ENV)
    if key_file:
        return Path(key_file).read_text(encoding="utf-8").splitlines()[0].strip()
    key = os.environ.get(KEY_ENV, "")
    if not key:
        raise TaoError("the model is encrypted and no key was given: pass -k to tao serve (or set TAO_KEY), or "
                       "export with encrypt=false")
    return key


def load_served(folder: Path, version: str):
    """(PredictStep, Loaded, infer spec) of the model in ``folder``, as infer_onnx would load its export."""
    import importlib

    from tao_launcher.core.inference import onnx_runner
    from tao_launcher.core.model import load_export
    from tao_launcher.core.predict import Loaded
    from tao_launcher.registry import resolve

    info = json.loads((folder / MODEL_INFO).read_text(encoding="utf-8"))
    step = resolve(info["predict"])
    spec = resolve(info["spec"])()  # infer_onnx's defaults: the decoding rules a served answer follows
    if info["encrypted"]:
        path, key = folder / version / ENCRYPTED_MODEL, serving_key()
    else:
        path, key = folder / version / PLAIN_MODEL / "model.onnx", ""
    model_bytes, processor, config = load_export(path, key, info["task"], importlib.import_module(step.family))
    return step, Loaded(onnx_runner(model_bytes), processor, config, source=path), spec


def answer_batch(step, model, spec, requests: List[Dict[str, List[Any]]]) -> List[Any]:
    """Per request, its rows (a list of JSON-able dicts) or the TaoError that refuses it. The good requests
    run as one batch; should that batch fail, each runs alone, so one bad request fails only itself."""
    results: List[Any] = [None] * len(requests)
    inputs: Dict[int, List[Any]] = {}
    for number, columns in enumerate(requests):
        try:
            inputs[number] = step.served(columns)
        except TaoError as err:
            results[number] = err
    try:
        results_of(step, model, spec, inputs, results)
    except Exception:  # noqa: BLE001 - find the request that fails, answer the others
        for number, items in inputs.items():
            try:
                results_of(step, model, spec, {number: items}, results)
            except TaoError as err:
                results[number] = err
            except Exception as err:  # noqa: BLE001 - a bug: said to the client that met it, in one line
                results[number] = TaoError(f"internal error in {step.task} ({type(err).__name__}: {err})")
    return results


def results_of(step, model, spec, inputs: Dict[int, List[Any]], results: List[Any]) -> None:
    """Predict ``inputs`` (request number -> its items) as one batch; each request's rows into ``results``."""
    flat = [item for items in inputs.values() for item in items]
    if not flat:
        return
    rows = step.rows(flat, step.predict(model, flat, spec.batch_size, spec), model, None)
    start = 0
    for number, items in inputs.items():
        results[number] = rows[start:start + len(items)]
        start += len(items)


class TritonPythonModel:
    """Triton's python-backend interface (``initialize``, ``execute``, ``finalize``)."""

    def initialize(self, args: Dict[str, str]) -> None:
        folder = Path(args["model_repository"])
        try:
            self.step, self.model, self.spec = load_served(folder, args["model_version"])
        except TaoError as err:  # Triton logs it and marks the model unavailable; tao serve prints it
            raise RuntimeError(f"tao: cannot load {folder.name}: {err}") from None
        self.inputs = json.loads((folder / MODEL_INFO).read_text(encoding="utf-8"))["inputs"]

    def execute(self, requests) -> List[Any]:
        import numpy as np
        import triton_python_backend_utils as pb

        columns = []
        for request in requests:
            request_columns = {}
            for name in self.inputs:
                tensor = pb.get_input_tensor_by_name(request, name)
                values = [] if tensor is None else tensor.as_numpy().reshape(-1).tolist()
                request_columns[name] = values
            columns.append(request_columns)
        responses = []
        for result in answer_batch(self.step, self.model, self.spec, columns):
            if isinstance(result, TaoError):
                responses.append(pb.InferenceResponse(output_tensors=[], error=pb.TritonError(str(result))))
                continue
            answer = np.array([[json.dumps(row, ensure_ascii=False).encode("utf-8")] for row in result],
                              dtype=np.object_)
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(ANSWER, answer)]))
        return responses

    def finalize(self) -> None:
        self.model = None
