"""Riva's gRPC API in front of the Triton server that ``tao serve`` runs, so a client written for Riva works.

Runs in the serving environment (``python -m tao_launcher.serving.riva``, started by serving/server.py with
``--riva-port``): the service stubs come from the PyPI package ``nvidia-riva-client``, and each call is
forwarded to Triton's gRPC endpoint with ``tritonclient``; the answer is the served model's JSON row
(serving/triton_model.py) put into Riva's message. The mapping:

===================================  ===============================  =========================================
Riva call                            task                             answer
===================================  ===============================  =========================================
``ClassifyText``                     text_classification              the label and its probability (top 1)
``ClassifyTokens``                   token_classification             every word with its tag and character span
``AnalyzeEntities``                  token_classification             the words tagged other than O
``PunctuateText``, ``TransformText`` punctuation_and_capitalization   the restored texts
``AnalyzeIntent``                    intent_slot_classification       intent, probability, slots with spans
``NaturalQuery``                     question_answering               the answer and its score
``Recognize``                        speech_to_text                   the transcript, the seconds of audio
``StreamingRecognize``               speech_to_text                   interim results each second, then final
``GetRivaNLPConfig``,                                                 the models served, with their task
``GetRivaSpeechRecognitionConfig``
===================================  ===============================  =========================================

``model_name`` (``model.model_name``; ``AnalyzeIntent``: ``options.domain``; ``Recognize``: ``config.model``)
picks the model; empty picks the only model of that task. Bad requests get a gRPC status and a sentence
naming the problem: an unknown model or none of that task is NOT_FOUND; empty text, a question without
context, audio in an encoding other than a WAV/FLAC file or raw 16-bit PCM (``LINEAR_PCM`` with
``sample_rate_hertz``) are INVALID_ARGUMENT, as is anything the model refuses; the server keeps serving.
Tokens carry no score (tao's tag decoding keeps none): their ``score`` is 0.
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import threading
import wave
from concurrent import futures
from typing import Dict, List, Optional

import grpc
import numpy as np
from riva.client.proto import riva_asr_pb2 as asr, riva_asr_pb2_grpc as asr_grpc
from riva.client.proto import riva_audio_pb2 as audio
from riva.client.proto import riva_nlp_pb2 as nlp, riva_nlp_pb2_grpc as nlp_grpc

STREAM_INTERIM_S = 1.0  # StreamingRecognize: an interim result after each second of new audio


class Refused(Exception):
    """A request the API refuses: its gRPC status and the sentence."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class Triton:
    """The served models (name -> task) and one call to them over Triton's gRPC endpoint."""

    def __init__(self, url: str, models: Dict[str, str]):
        import tritonclient.grpc as client

        self.client_module = client
        self.client = client.InferenceServerClient(url)
        self.models = models

    def pick(self, task: str, name: str) -> str:
        """The model named ``name`` (of ``task``), or the only model of ``task`` when ``name`` is empty."""
        if name:
            if self.models.get(name) != task:
                served = ", ".join(f"{n} ({t})" for n, t in sorted(self.models.items()))
                raise Refused(grpc.StatusCode.NOT_FOUND, f"no {task} model named {name!r} is served; served: {served}")
            return name
        names = sorted(n for n, t in self.models.items() if t == task)
        if len(names) != 1:
            why = "none is served" if not names else f"{len(names)} are served ({', '.join(names)}): name one"
            raise Refused(grpc.StatusCode.NOT_FOUND if not names else grpc.StatusCode.INVALID_ARGUMENT,
                          f"this call needs a {task} model, and {why}")
        return names[0]

    def rows(self, model: str, columns: Dict[str, List]) -> List[Dict]:
        """The model's answer rows for one request (Triton's error, which names the item, refuses it)."""
        from tritonclient.utils import InferenceServerException

        client = self.client_module
        tensors = []
        for name, values in columns.items():
            array = np.array([[v] for v in values], dtype=np.object_)
            tensor = client.InferInput(name, list(array.shape), "BYTES")
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        try:
            result = self.client.infer(model, tensors, outputs=[client.InferRequestedOutput("ANSWER")])
        except InferenceServerException as err:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, err.message() or str(err)) from None
        return [json.loads(item[0]) for item in result.as_numpy("ANSWER")]


def texts_of(values, what: str = "text") -> List[str]:
    texts = list(values)
    if not texts:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"the request has no {what}: send at least one")
    return texts


def word_spans(text: str, words: List[str]) -> List[nlp.Span]:
    """Each word's character span in ``text`` (words are ``text.split()``, in order)."""
    spans, at = [], 0
    for word in words:
        start = text.index(word, at)
        at = start + len(word)
        spans.append(nlp.Span(start=start, end=at))
    return spans


def token_values(text: str, tags: List[str], keep_outside: bool) -> List[nlp.TokenClassValue]:
    words = text.split()
    return [nlp.TokenClassValue(token=word, label=[nlp.Classification(class_name=tag)], span=[span])
            for word, tag, span in zip(words, tags, word_spans(text, words)) if keep_outside or tag != "O"]


def pcm_as_wav(data: bytes, config: asr.RecognitionConfig) -> bytes:
    """The request's audio as a file's bytes: a WAV or FLAC file as it came, raw 16-bit PCM given a WAV header."""
    if data[:4] in (b"RIFF", b"fLaC"):
        return data
    if config.encoding != audio.AudioEncoding.LINEAR_PCM:
        name = audio.AudioEncoding.Name(config.encoding)
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                      f"audio encoding {name} is not supported: send a WAV or FLAC file's bytes, or raw 16-bit PCM "
                      f"with encoding=LINEAR_PCM and sample_rate_hertz")
    if config.sample_rate_hertz <= 0:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "raw LINEAR_PCM audio needs sample_rate_hertz: set it in "
                                                        "the RecognitionConfig")
    if not data or len(data) % 2:
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"raw LINEAR_PCM audio of {len(data)} bytes is not 16-bit "
                                                        f"samples: send whole samples")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(max(1, config.audio_channel_count or 1))
        out.setsampwidth(2)
        out.setframerate(config.sample_rate_hertz)
        out.writeframes(data)
    return buffer.getvalue()


def recognition(row: Dict) -> asr.SpeechRecognitionResult:
    return asr.SpeechRecognitionResult(
        alternatives=[asr.SpeechRecognitionAlternative(transcript=row["transcript"], confidence=1.0)],
        audio_processed=row["duration"])


class Language(nlp_grpc.RivaLanguageUnderstandingServicer):
    def __init__(self, triton: Triton):
        self.triton = triton

    def ClassifyText(self, request, context):
        rows = self.triton.rows(self.triton.pick("text_classification", request.model.model_name),
                                {"TEXT": texts_of(request.text)})
        return nlp.TextClassResponse(results=[
            nlp.ClassificationResult(labels=[nlp.Classification(class_name=r["label"], score=r["score"])])
            for r in rows])

    def _tokens(self, texts: List[str], model: str, keep_outside: bool):
        rows = self.triton.rows(self.triton.pick("token_classification", model), {"TEXT": texts})
        return nlp.TokenClassResponse(results=[
            nlp.TokenClassSequence(results=token_values(r["text"], r["tags"], keep_outside)) for r in rows])

    def ClassifyTokens(self, request, context):
        return self._tokens(texts_of(request.text), request.model.model_name, True)

    def AnalyzeEntities(self, request, context):
        return self._tokens(texts_of([request.query] if request.query else [], "query"), "", False)

    def PunctuateText(self, request, context):
        rows = self.triton.rows(self.triton.pick("punctuation_and_capitalization", request.model.model_name),
                                {"TEXT": texts_of(request.text)})
        return nlp.TextTransformResponse(text=[r["restored"] for r in rows])

    TransformText = PunctuateText

    def AnalyzeIntent(self, request, context):
        query = texts_of([request.query] if request.query else [], "query")
        model = self.triton.pick("intent_slot_classification", request.options.domain)
        row = self.triton.rows(model, {"TEXT": query})[0]
        words = row["text"].split()
        spans = word_spans(row["text"], words)
        slots = [nlp.TokenClassValue(token=s["text"], label=[nlp.Classification(class_name=s["slot"])],
                                     span=[nlp.Span(start=spans[s["start"]].start, end=spans[s["end"] - 1].end)])
                 for s in row["slots"]]
        return nlp.AnalyzeIntentResponse(
            intent=nlp.Classification(class_name=row["intent"], score=row["intent_probability"]), slots=slots,
            domain_str=model, domain=nlp.Classification(class_name=model, score=1.0))

    def NaturalQuery(self, request, context):
        if not request.context.strip():
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "NaturalQuery needs a context: the paragraph that "
                                                            "holds the answer")
        query = texts_of([request.query] if request.query else [], "query")
        row = self.triton.rows(self.triton.pick("question_answering", ""),
                               {"QUESTION": query, "CONTEXT": [request.context]})[0]
        return nlp.NaturalQueryResponse(results=[nlp.NaturalQueryResult(answer=row["answer"], score=row["score"])])

    def GetRivaNLPConfig(self, request, context):
        return nlp.RivaNLPConfigResponse(model_config=configs(self.triton.models, request.model_name,
                                                              nlp.RivaNLPConfigResponse.Config, speech=False))


class Speech(asr_grpc.RivaSpeechRecognitionServicer):
    def __init__(self, triton: Triton):
        self.triton = triton

    def Recognize(self, request, context):
        model = self.triton.pick("speech_to_text", request.config.model)
        row = self.triton.rows(model, {"AUDIO": [pcm_as_wav(request.audio, request.config)]})[0]
        return asr.RecognizeResponse(results=[recognition(row)])

    def StreamingRecognize(self, request_iterator, context):
        config, chunks, sent = None, [], 0
        for request in request_iterator:
            if request.HasField("streaming_config"):
                config = request.streaming_config
                continue
            if config is None:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "the first StreamingRecognizeRequest must hold the "
                                                                "streaming_config")
            chunks.append(request.audio_content)
            audio_bytes = b"".join(chunks)
            seconds = len(audio_bytes) / 2 / max(config.config.sample_rate_hertz, 1)
            if config.interim_results and seconds - sent >= STREAM_INTERIM_S:
                sent = seconds
                yield self._streamed(config, audio_bytes, final=False)
        if config is None:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "the stream held no streaming_config and no audio")
        yield self._streamed(config, b"".join(chunks), final=True)

    def _streamed(self, config, audio_bytes: bytes, final: bool) -> asr.StreamingRecognizeResponse:
        model = self.triton.pick("speech_to_text", config.config.model)
        row = self.triton.rows(model, {"AUDIO": [pcm_as_wav(audio_bytes, config.config)]})[0]
        result = recognition(row)
        return asr.StreamingRecognizeResponse(results=[asr.StreamingRecognitionResult(
            alternatives=result.alternatives, is_final=final, audio_processed=result.audio_processed)])

    def GetRivaSpeechRecognitionConfig(self, request, context):
        return asr.RivaSpeechRecognitionConfigResponse(model_config=configs(
            self.triton.models, request.model_name, asr.RivaSpeechRecognitionConfigResponse.Config, speech=True))


def configs(models: Dict[str, str], only: str, config_cls, speech: bool) -> List:
    chosen = {n: t for n, t in models.items() if (t == "speech_to_text") == speech and (not only or n == only)}
    return [config_cls(model_name=n, parameters={"task": t, "server": "tao serve"}) for n, t in sorted(chosen.items())]


class Refusals(grpc.ServerInterceptor):
    """Turn a ``Refused`` raised by any call into its status and sentence; anything else into INTERNAL."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None

        def guard(behaviour, streaming_response: bool):
            def unary(request, context):
                try:
                    return behaviour(request, context)
                except Refused as err:
                    context.abort(err.code, str(err))

            def streamed(request, context):
                try:
                    yield from behaviour(request, context)
                except Refused as err:
                    context.abort(err.code, str(err))
            return streamed if streaming_response else unary

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(guard(handler.unary_unary, False),
                                                       handler.request_deserializer, handler.response_serializer)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(guard(handler.stream_stream, True),
                                                         handler.request_deserializer, handler.response_serializer)
        return handler


def serve(host: str, port: int, triton_url: str, models: Dict[str, str], workers: int = 8) -> None:
    triton = Triton(triton_url, models)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), interceptors=[Refusals()])
    nlp_grpc.add_RivaLanguageUnderstandingServicer_to_server(Language(triton), server)
    asr_grpc.add_RivaSpeechRecognitionServicer_to_server(Speech(triton), server)
    if not server.add_insecure_port(f"{host}:{port}"):
        raise SystemExit(f"tao: error: cannot listen on {host}:{port} for the Riva API: pick another --riva-port")
    server.start()
    print(f"riva api listening on {host}:{port}", flush=True)
    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2).wait()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--triton", required=True, help="Triton's gRPC address, host:port")
    parser.add_argument("--models", required=True, help="JSON: model name -> task")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.triton, json.loads(args.models))


if __name__ == "__main__":
    main()
