"""Spec schemas of speech_to_text, one per subtask, with TAO Toolkit 3.0 / NeMo field names.

The single source of the shipped YAML (``specs/speech_to_text``), validation and ``--help``. The model
section follows NeMo's ``EncDecCTCModel`` config: ``preprocessor`` (AudioToMelSpectrogramPreprocessor),
``spec_augment``, ``encoder`` (the ``jasper:`` block table, here named by ``arch`` and scaled by
``channel_scale``) and the vocabulary (``labels``, or a sentencepiece ``tokenizer`` for Citrinet).
Imports no torch. The shapes shared with the other tasks come from ``spec.schema``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional

from tao_launcher.spec.schema import (
    DROPOUT, FRACTION, LEARNING_RATE, POSITIVE, REQUIRED, Examples, ExportFields, OptimSpec, SchedSpec, SpecBase,
    data_section, dataset_convert_spec, evaluate_spec, finetune_spec, section, shuffle_field, spec_field,
    subset_section, subtask_spec, train_spec)

EXAMPLE = Examples("speech_to_text", "/results/asr", exported="exported-model.riva")
ARCHS = ("quartznet_5x5", "quartznet_15x5", "jasper_10x5", "citrinet_256", "citrinet_384", "citrinet_1024")
# NeMo's QuartzNet/Jasper character set: blank is the extra last class of the decoder
CHAR_LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
MANIFEST_HELP = "NeMo manifest: JSON lines {audio_filepath, duration, text}; relative paths from the manifest's folder"
SKIP_HELP = ("false: an unreadable or empty audio file, a missing transcript or a wrong duration stops the run, "
             "naming the manifest line; true: such lines are skipped and counted")
DURATION = dict(min=0.0, max=3600.0)
SAMPLE_RATE = dict(min=8000, max=48000)


def _data_spec(name: str, batch_size: int, training: bool) -> type:
    """NeMo's ``{manifest_filepath, batch_size, max_duration, ...}`` dataset section."""
    training_fields = [
        ("max_duration", float, spec_field(16.7, "leave out utterances longer than this (seconds)", **DURATION)),
        ("min_duration", float, spec_field(0.1, "leave out utterances shorter than this (seconds)", **DURATION)),
        shuffle_field("random batches: batch norm needs mixed ones"),
        ("speed_perturb", List[float], spec_field(
            [], "extra copies of every clip played at these speeds, e.g. [0.9, 1.1] (Kaldi's 3-way speed "
                "perturbation); featurised once with the rest, so an epoch trains on every copy; a copy slowed "
                "beyond max_duration is left out", min=0.5, max=2.0)),
    ]
    return data_section(name, [("manifest_filepath", str, spec_field(REQUIRED, MANIFEST_HELP, path="file"))],
                        batch_size, "utterances per batch", "utterances", training=training_fields if training else (),
                        after=[("skip_bad_files", bool, spec_field(False, SKIP_HELP))])


TrainingData = _data_spec("TrainingData", 32, training=True)
EvalData = _data_spec("EvalData", 32, training=False)


@dataclass
class PreprocessorSpec:
    """NeMo's AudioToMelSpectrogramPreprocessor, with its defaults."""

    features: int = spec_field(64, "mel bands", min=8, max=512)
    window_size: float = spec_field(0.02, "STFT window (seconds)", min=0.001, max=0.2)
    window_stride: float = spec_field(0.01, "STFT hop (seconds): one feature frame per stride", min=0.001, max=0.1)
    n_fft: int = spec_field(512, "FFT size (at least the window in samples)", min=16, max=8192)
    normalize: str = spec_field("per_feature", "per_feature (each mel band to mean 0, std 1 over the utterance) "
                                               "or none", choices=("per_feature", "none"))
    dither: float = spec_field(1e-5, "white noise added to the training audio (guards log(0) on digital silence)",
                               min=0.0, max=1.0)


@dataclass
class SpecAugmentSpec:
    """SpecAugment on the cached features, training only (NeMo's SpectrogramAugmentation)."""

    freq_masks: int = spec_field(2, "frequency masks per utterance", min=0, max=64)
    freq_width: int = spec_field(15, "largest frequency mask (mel bands)", min=0, max=512)
    time_masks: int = spec_field(2, "time masks per utterance", min=0, max=64)
    time_width: float = spec_field(0.05, "largest time mask: a fraction of the utterance (at most 1) or frames "
                                         "(more than 1)",
                                   min=0.0, max=10000.0)


@dataclass
class EncoderSpec:
    channel_scale: float = spec_field(1.0, "multiplies every block's filters (0.25 trains on a laptop CPU; rounded "
                                           "to a multiple of 8)", min=0.01, max=8.0)
    activation: str = spec_field("relu", "activation of every block", choices=("relu", "swish"))
    dropout: Optional[float] = spec_field(None, "dropout after every block's activation, replacing the table's "
                                                "(null: the arch table's own, none for QuartzNet)", **DROPOUT)
    jasper: List[Dict[str, Any]] = spec_field(
        [], "explicit block table, NeMo's jasper: list ({filters, repeat, kernel, stride, dilation, dropout, residual, "
            "separable, se}); overrides model.arch when given")


@dataclass
class TokenizerSpec:
    """Citrinet's subword vocabulary (QuartzNet and Jasper use model.labels)."""

    dir: Optional[str] = spec_field(None, "folder with a trained tokenizer.model (sentencepiece); null: train one on "
                                          "the training transcripts", path="dir")
    vocab_size: int = spec_field(128, "subword units when training the tokenizer", min=8, max=32000)
    type: str = spec_field("unigram", "sentencepiece model type", choices=("unigram", "bpe"))


@dataclass
class ModelSpec:
    arch: str = spec_field("quartznet_5x5", "block table: " + ", ".join(ARCHS), choices=ARCHS)
    sample_rate: int = spec_field(16000, "audio is resampled to this rate (Hz)", **SAMPLE_RATE)
    labels: List[str] = spec_field(CHAR_LABELS, "character vocabulary of QuartzNet and Jasper (one character each); "
                                                "the CTC blank is added after them")
    tokenizer: TokenizerSpec = section(TokenizerSpec, "subword vocabulary (Citrinet)")
    preprocessor: PreprocessorSpec = section(PreprocessorSpec, "log-mel features")
    spec_augment: SpecAugmentSpec = section(SpecAugmentSpec, "SpecAugment (training only)")
    encoder: EncoderSpec = section(EncoderSpec, "the convolutional encoder")

    def problems(self) -> List[str]:
        bad = [label for label in self.labels if not isinstance(label, str) or len(label) != 1]
        if bad:
            return [f"model.labels must be single characters, got {bad[:3]}: list one character per label"]
        if len(set(self.labels)) != len(self.labels):
            return ["model.labels lists a character twice: list each character once"]
        if self.encoder.jasper:
            from tao_launcher.asr.blocks import build_blocks  # no torch: the tables and their checks
            from tao_launcher.errors import UsageError

            try:
                build_blocks(self.arch, blocks=self.encoder.jasper)
            except UsageError as err:
                return [f"model.encoder.jasper: {err}"]
        if self.preprocessor.n_fft < round(self.preprocessor.window_size * self.sample_rate):
            return [f"model.preprocessor.n_fft={self.preprocessor.n_fft} is shorter than the window "
                    f"({round(self.preprocessor.window_size * self.sample_rate)} samples at {self.sample_rate} Hz): "
                    f"raise n_fft or shorten window_size"]
        augment, bands = self.spec_augment, self.preprocessor.features
        if augment.freq_masks and augment.freq_width >= bands:
            return [f"model.spec_augment.freq_width={augment.freq_width} must be below model.preprocessor.features="
                    f"{bands} (the mel bands a frequency mask hides): lower freq_width or raise features"]
        return []


@dataclass
class SpeechSchedSpec(SchedSpec):
    name: str = spec_field("CosineAnnealing", "WarmupAnnealing, CosineAnnealing (NeMo's ASR default) or none",
                           choices=("WarmupAnnealing", "CosineAnnealing", "none"))
    warmup_ratio: float = spec_field(0.05, "fraction of all steps spent warming up", **FRACTION)


@dataclass
class SpeechOptimSpec(OptimSpec):
    """NeMo's ASR recipe: novograd, betas (0.8, 0.5), weight decay 0.001, cosine annealing with warm-up."""

    name: str = spec_field("novograd", "optimizer: novograd (NeMo's ASR default), adam, adamw or sgd",
                           choices=("novograd", "adam", "adamw", "sgd"))
    lr: float = spec_field(0.01, "peak learning rate", **LEARNING_RATE)
    weight_decay: float = spec_field(0.001, "added to the normalised gradient (novograd), decoupled (adamw) or L2",
                                     min=0.0, max=10.0)
    betas: List[float] = spec_field([0.8, 0.5], "novograd and Adam betas (two numbers)", min=0.0, max=1.0,
                                    max_exclusive=True, length=2)
    sched: SpeechSchedSpec = section(SpeechSchedSpec, "learning-rate schedule")


# the subtask schemas (the names registry.py looks up)
DatasetConvertSpec = dataset_convert_spec(
    EXAMPLE("dataset_convert", "dataset_name=fsdd source_data_dir=/data/fsdd target_data_dir=/data/fsdd_16k"),
    dataset=("fsdd", "fsdd, librispeech, ljspeech, or manifest (a NeMo manifest to check, resample and normalise)",
             ("fsdd", "librispeech", "ljspeech", "manifest")),
    source="the dataset's folder (fsdd: recordings/; librispeech: the LibriSpeech/ tree; ljspeech: metadata.csv "
           "and wavs/), or the manifest file for dataset_name=manifest", source_kind="exists",
    target="folder for <split>_manifest.json and the resampled wavs/",
    extra=[("sample_rate", int, spec_field(16000, "rate of the written mono 16-bit wav files (Hz)", **SAMPLE_RATE)),
           ("test_ratio", float, spec_field(0.1, "ljspeech only (it has no split): the share of clips for the test "
                                                 "manifest", min=0.0, max=1.0, min_exclusive=True, max_exclusive=True)),
           ("skip_bad_files", bool, spec_field(False, "false: a bad audio file or transcript stops the conversion, "
                                                      "naming it; true: it is skipped and counted"))])
TrainSpec = train_spec(
    EXAMPLE("train", "training_ds.manifest_filepath=/data/fsdd_16k/train_manifest.json "
                     "validation_ds.manifest_filepath=/data/fsdd_16k/test_manifest.json"),
    ModelSpec, TrainingData, EvalData, SpeechOptimSpec, model_help="the acoustic model",
    validation_help="validation data, evaluated every epoch (val_wer picks the model)",
    problems=lambda spec: spec.model.problems())
FinetuneModelSpec = subset_section("FinetuneModelSpec", ModelSpec, "spec_augment")
FinetuneSpec = finetune_spec(
    TrainSpec, EXAMPLE("finetune", "finetuning_ds.manifest_filepath=/data/new/train_manifest.json "
                                   "validation_ds.manifest_filepath=/data/new/test_manifest.json", spec=True),
    FinetuneModelSpec, model_help="the model, its features and vocabulary come from -m",
    data="fine-tuning data (the -m model's vocabulary)", validation_ds="validation data, evaluated every epoch")
EvaluateSpec = evaluate_spec(EXAMPLE("evaluate", "test_ds.manifest_filepath=/data/fsdd_16k/test_manifest.json"),
                             EvalData)


@dataclass
class InferSpec(SpecBase):
    example: ClassVar[str] = EXAMPLE("infer", "'file_paths=[/data/clip1.wav,/data/clip2.flac]'")
    file_paths: List[str] = spec_field([], "audio files to transcribe (wav, flac, ...; any rate, resampled)",
                                       path="file")
    input_manifest: Optional[str] = spec_field(None, "a NeMo manifest to transcribe instead (its text is ignored)",
                                               path="file")
    batch_size: int = spec_field(16, "utterances per batch", **POSITIVE)


@dataclass
class ExportSpec(ExportFields):
    example: ClassVar[str] = EXAMPLE("export", "export_format=RIVA")
    export_format: str = spec_field("RIVA", "RIVA (.riva: model.onnx, preprocessor settings and vocabulary), ONNX "
                                            "(encrypted .eonnx; plain with encrypt=false) or TRITON (a Triton model "
                                            "repository for tao serve)", choices=("RIVA", "ONNX", "TRITON"))
    encrypt: bool = spec_field(True, "ONNX and TRITON: false writes plain files (model.onnx, vocabulary, settings) "
                                     "that onnxruntime opens; RIVA is always encrypted")
    export_to: Optional[str] = spec_field(None, "name in the results folder (default exported-model.riva, "
                                                "exported-model.eonnx, exported-model-onnx/, exported-model-triton/)")


InferOnnxSpec = subtask_spec("InferOnnxSpec", EXAMPLE("infer_onnx", "'file_paths=[/data/clip1.wav]'"), base=InferSpec)


def _arch(arch: str, **values) -> Dict[str, Any]:
    return {"model.arch": arch, **values}


# download_specs writes one train spec per arch (NeMo's recipes: Citrinet trains at a higher rate with a
# faster-decaying second moment) and the FSDD recipe below (issue 10: test WER <= 0.05 within 15 minutes
# on a 2-core CPU; benchmarks/RESULTS.md).
SPEC_VARIANTS = {
    **{f"train_{arch}.yaml": ("train", _arch(arch), f"train {arch} from scratch")
       for arch in ("quartznet_5x5", "quartznet_15x5", "jasper_10x5")},
    **{f"train_{arch}.yaml": ("train", _arch(arch, **{"optim.lr": 0.05, "optim.betas": [0.8, 0.25]}),
                              f"train {arch} from scratch, with a sentencepiece tokenizer trained on the transcripts")
       for arch in ("citrinet_256", "citrinet_384", "citrinet_1024")},
    # FSDD is recorded at 8 kHz: at 16 kHz a quarter of the mel bands hold only the dither, drawn once and cached,
    # which the model memorises (40 epochs, time_width 0.2: test WER 0.093 at 16 kHz, 0.060 at 8 kHz); dropout
    # and wider time masks against overfitting 2,700 clips of 6 speakers
    "train_fsdd.yaml": ("train", _arch("quartznet_5x5", **{"model.encoder.channel_scale": 0.25,
                                                            "model.sample_rate": 8000,
                                                            "model.encoder.dropout": 0.1,
                                                            "model.spec_augment.time_width": 0.2,
                                                            "trainer.max_epochs": 80,
                                                            "trainer.checkpoint_every_n_steps": 0}),
                        "QuartzNet 5x5 at a quarter of its channels on the Free Spoken Digit Dataset (dataset_convert "
                        "dataset_name=fsdd), sized for a 2-core CPU; features at FSDD's own 8 kHz"),
}
