#!/usr/bin/env bash
# `make demo`: the whole text_classification workflow on the packaged SST-2-format sample, on this
# machine (the local runner: no GPU, no Docker, no download), then a short summary.
#
#   download_specs -> dataset_convert -> train -> evaluate -> infer -> export -> infer_onnx
#
# Everything goes into DEMO_DIR (default: demo/ in the repository, git-ignored); running it again
# replaces the previous demo (--overwrite). The key is TAO_KEY, or "tao-demo" when unset.
# The settings below (epochs, learning rate, batch size) are tuned on the sample so that the
# predictions at the end are right and confident; see README.md, "Quickstart".
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VENV:-$REPO/.venv}/bin
W=$(mkdir -p "${DEMO_DIR:-$REPO/demo}" && cd "${DEMO_DIR:-$REPO/demo}" && pwd)
STARTED=${DEMO_STARTED:-$(date +%s)}    # make demo passes the time before the install
export TAO_KEY=${TAO_KEY:-tao-demo} HF_HUB_OFFLINE=1
SAMPLE=$("$BIN/python" -c "import tao_launcher, pathlib; print(pathlib.Path(tao_launcher.__file__).parent / 'samples/sst2_sample')")
SENTENCES='["a warm , funny and moving film .", "one of the best films of the year .", "a tedious , lifeless mess .", "two hours i will never get back ."]'
MODEL=$W/results/train/checkpoints/trained-model.tao
STEP=0

tao() {   # one step: the command as a user would type it, then its output
    local args=("$1" "$2" --runner local --overwrite "${@:3}")
    STEP=$((STEP + 1))
    printf '\n==> [%d/7] tao %s\n' "$STEP" "${args[*]}"
    "$BIN/tao" "${args[@]}"
}

tao text_classification download_specs -o "$W/specs/text_classification" -r "$W/results/download_specs"
tao text_classification dataset_convert -e "$W/specs/text_classification/dataset_convert.yaml" \
    -r "$W/results/dataset_convert" dataset_name=sst2 source_data_dir="$SAMPLE" target_data_dir="$W/data"
tao text_classification train -e "$W/specs/text_classification/train.yaml" -r "$W/results/train" \
    model.class_labels.class_labels_file="$W/data/labels.txt" \
    training_ds.file_path="$W/data/train.tsv" validation_ds.file_path="$W/data/dev.tsv" \
    trainer.max_epochs=3 training_ds.batch_size=16 optim.lr=3e-4
tao text_classification evaluate -r "$W/results/evaluate" -m "$MODEL" test_ds.file_path="$W/data/dev.tsv"
tao text_classification infer -r "$W/results/infer" -m "$MODEL" "input_batch=$SENTENCES"
tao text_classification export -r "$W/results/export" -m "$MODEL" export_format=ONNX
tao text_classification infer_onnx -r "$W/results/infer_onnx" -m "$W/results/export/exported-model.eonnx" \
    "input_batch=$SENTENCES"

"$BIN/python" - "$W" "$STARTED" <<'PY'
"""The demo's summary, from the status.json files of its results folders."""
import json, os, sys, time
from pathlib import Path

w, started = Path(sys.argv[1]), float(sys.argv[2])
results = w / "results"
status = lambda step: json.loads((results / step / "status.json").read_text())
evaluation = status("evaluate")["metrics"]
print("\n==> demo summary")
lines = [("accuracy", f"{evaluation['test_acc']:.3f} on the 60 sentences of {w / 'data/dev.tsv'} "
                      f"(macro F1 {evaluation['test_macro_f1']:.3f}; the sample is far too small to measure a model)"),
         ("model", str(results / "train/checkpoints/trained-model.tao") + " (encrypted with TAO_KEY)"),
         ("exported", str(results / "export/exported-model.eonnx"))]
for name, path in (("plots", results / "train/plots"), ("plots", results / "evaluate/confusion_matrix.png"),
                   ("tensorboard", results / "train/tensorboard")):
    if path.exists():
        lines.append((name, f"tensorboard --logdir {path}" if name == "tensorboard" else str(path)))
lines += [("logs", f"{results}/<step>/log.txt and status.json, one folder per step"),
          ("specs", str(w / "specs/text_classification"))]
torch_rows = json.loads((results / "infer/infer_results.json").read_text())
onnx_rows = json.loads((results / "infer_onnx/infer_results.json").read_text())
for row, onnx in zip(torch_rows, onnx_rows):
    same = "" if onnx["label"] == row["label"] else f"  (ONNX: {onnx['label']} {onnx['score']:.2f})"
    lines.append(("prediction", f"{row['label']:<8} {row['score']:.2f}  {row['sentence']}{same}"))
minutes, seconds = divmod(round(time.time() - started), 60)
lines.append(("time", f"{minutes} min {seconds:02d} s" + (" including the install" if os.environ.get("DEMO_STARTED") else "")))
for name, value in lines:
    print(f"  {name + ':':<11} {value}")
PY
