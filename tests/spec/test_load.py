"""Resolving a spec: schema defaults < spec file < key=value overrides, with every problem named."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from tao_launcher.errors import UsageError
from tao_launcher.spec.load import SpecError, leaf_fields, map_paths, path_keys, resolve_spec, to_dict
from tao_launcher.spec.render import render_help, render_yaml
from tao_launcher.spec.schema import REQUIRED
from tao_launcher.tasks.text_classification.spec import (
    DatasetConvertSpec, EvaluateSpec, ExportSpec, InferSpec, TrainSpec)
from tao_launcher.registry import TASKS

# every schema of every task, by "task.subtask": the rendering tests hold for all of them
SCHEMAS = {f"{t.name}.{s.name}": s.schema() for t in TASKS.values() for s in t.spec_subtasks()}

TRAIN_REQUIRED = ["model.dataset.num_classes=2", "training_ds.file_path=/data/train.tsv",
                  "validation_ds.file_path=/data/dev.tsv"]


def spec_file(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(schema, file=None, overrides=()) -> str:
    with pytest.raises(SpecError) as info:
        resolve_spec(schema, file, list(overrides))
    return str(info.value)


def required_overrides(schema) -> list:
    """key=value for every ??? field of a schema, with a value of the right type."""
    out = []
    for key, leaf in leaf_fields(schema).items():
        if leaf.default == REQUIRED:
            out.append(f"{key}={2 if leaf.type is int else '/data/' + key}")
        elif key == "model.dataset.num_classes":   # text_classification: needed unless a labels file names them
            out.append(f"{key}=2")
    return out


# ----------------------------------------------------------------------------- precedence and types

def test_defaults_then_file_then_overrides(tmp_path):
    path = spec_file(tmp_path, "trainer:\n  max_epochs: 3\n  seed: 7\noptim:\n  lr: 2e-5\n")
    spec = resolve_spec(TrainSpec, path, TRAIN_REQUIRED + ["trainer.max_epochs=5"])
    assert spec.trainer.max_epochs == 5          # override beats file
    assert spec.trainer.seed == 7                # file beats default
    assert spec.optim.lr == 2e-5                 # file beats default
    assert spec.training_ds.batch_size == 32     # default
    assert spec.model.dataset.num_classes == 2
    assert isinstance(spec, TrainSpec)


def test_last_override_wins():
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED + ["trainer.max_epochs=2", "trainer.max_epochs=4"])
    assert spec.trainer.max_epochs == 4


def test_yaml_float_without_dot_is_a_float(tmp_path):
    path = spec_file(tmp_path, "optim:\n  lr: 2e-5\n  weight_decay: 1\n")
    spec = resolve_spec(TrainSpec, path, TRAIN_REQUIRED)
    assert spec.optim.lr == 2e-5 and type(spec.optim.lr) is float
    assert spec.optim.weight_decay == 1.0 and type(spec.optim.weight_decay) is float


def test_float_override():
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED + ["optim.lr=3e-4"])
    assert spec.optim.lr == 3e-4 and type(spec.optim.lr) is float


def test_list_override():
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED + ["optim.betas=[0.8,0.9]"])
    assert spec.optim.betas == [0.8, 0.9]
    assert all(type(b) is float for b in spec.optim.betas)


def test_list_of_strings_in_file(tmp_path):
    path = spec_file(tmp_path, "input_batch:\n  - good film\n  - 'bad: film'\n")
    spec = resolve_spec(InferSpec, path)
    assert spec.input_batch == ["good film", "bad: film"]


def test_choices_are_case_insensitive_and_canonical(tmp_path):
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED + ["optim.name=ADAMW", "optim.sched.name=cosineannealing",
                                                           "trainer.precision=BF16-Mixed"])
    assert spec.optim.name == "adamw"
    assert spec.optim.sched.name == "CosineAnnealing"
    assert spec.trainer.precision == "bf16-mixed"
    export = resolve_spec(ExportSpec, spec_file(tmp_path, "export_format: onnx\n"))
    assert export.export_format == "ONNX"


def test_numeric_choice_read_as_string(tmp_path):
    """precision: 32 is an int in YAML; the field is a string choice."""
    spec = resolve_spec(TrainSpec, spec_file(tmp_path, "trainer:\n  precision: 32\n"), TRAIN_REQUIRED)
    assert spec.trainer.precision == "32"


def test_bad_choice_lists_the_choices():
    message = problems(TrainSpec, None, TRAIN_REQUIRED + ["optim.name=lion"])
    assert "optim.name must be one of adam, adamw, sgd" in message and "'lion'" in message


def test_null_for_optional_fields(tmp_path):
    path = spec_file(tmp_path, "optim:\n  sched:\n    warmup_steps: null\n")
    spec = resolve_spec(TrainSpec, path, TRAIN_REQUIRED + ["model.dataset.class_balancing=null",
                                                           "model.class_labels.class_labels_file=null"])
    assert spec.optim.sched.warmup_steps is None
    assert spec.model.dataset.class_balancing is None
    assert spec.model.class_labels.class_labels_file is None
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED + ["optim.sched.warmup_steps=100",
                                                           "model.dataset.class_balancing=weighted_loss"])
    assert spec.optim.sched.warmup_steps == 100
    assert spec.model.dataset.class_balancing == "weighted_loss"


def test_null_for_required_type_is_an_error():
    message = problems(TrainSpec, None, TRAIN_REQUIRED + ["trainer.max_epochs=null"])
    assert "trainer.max_epochs must be an integer" in message


@pytest.mark.parametrize("override, expected", [
    ("trainer.max_epochs=1.5", "trainer.max_epochs must be an integer"),
    ("trainer.max_epochs=true", "trainer.max_epochs must be an integer"),
    ("trainer.enable_progress_bar=1", "trainer.enable_progress_bar must be true or false"),
    ("optim.lr=fast", "optim.lr must be a number"),
    ("optim.lr=true", "optim.lr must be a number"),
    ("optim.betas=[0.9,x]", "optim.betas must be"),
    ("optim.betas=0.9", "optim.betas must be"),
])
def test_wrong_types(override, expected):
    message = problems(TrainSpec, None, TRAIN_REQUIRED + [override])
    assert expected in message
    assert f"command line '{override.split('=')[0]}=" in message


def test_list_type_message_reads_well():
    message = problems(TrainSpec, None, TRAIN_REQUIRED + ["optim.betas=0.9"])
    assert "optim.betas must be a list of numbers" in message


# ----------------------------------------------------------------------------- problems

def test_every_problem_is_named_with_file_and_line(tmp_path):
    path = spec_file(tmp_path, "\n".join([
        "trainer:",                 # 1
        "  max_epochs: 2",          # 2
        "  max_epoch: 3",           # 3
        "optim:",                   # 4
        "  lr: fast",               # 5
        "  sched: 5",               # 6
        "trainning_ds:",            # 7
        "  file_path: /data/x",     # 8
    ]) + "\n")
    message = problems(TrainSpec, path, ["model.dataset.num_classes=2", "validation_ds.file_path=/v",
                                         "trainer.seeed=1"])
    assert message.startswith("the spec has 6 problems")
    assert f"{path}:3: unknown key trainer.max_epoch; did you mean trainer.max_epochs?" in message
    assert f"{path}:5: optim.lr must be a number, got 'fast'" in message
    assert f"{path}:6: optim.sched is a section" in message
    assert f"{path}:8: unknown key trainning_ds.file_path; did you mean training_ds.file_path?" in message
    assert "command line 'trainer.seeed=1': unknown key trainer.seeed; did you mean trainer.seed?" in message
    assert "training_ds.file_path is required" in message   # the typo left it unset


def test_unknown_leaf_name_suggests_full_key():
    message = problems(TrainSpec, None, TRAIN_REQUIRED + ["max_epochs=2"])
    assert "did you mean trainer.max_epochs?" in message


def test_required_fields_name_an_example_override():
    message = problems(TrainSpec)
    assert message.startswith("the spec has 2 problems")
    assert "training_ds.file_path=/data/" in message
    assert "validation_ds.file_path=/data/" in message


def test_num_classes_needed_only_without_a_labels_file():
    """A rule between fields (SpecBase.problems), checked once every field is valid."""
    message = problems(TrainSpec, None, TRAIN_REQUIRED[1:])
    assert "model.dataset.num_classes is required when model.class_labels.class_labels_file" in message
    assert "model.dataset.num_classes=2" in message
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED[1:] + ["model.class_labels.class_labels_file=/d/l.txt"])
    assert spec.model.dataset.num_classes is None


def test_required_left_in_file_names_file(tmp_path):
    path = spec_file(tmp_path, "model:\n  dataset:\n    num_classes: ???\n")
    message = problems(TrainSpec, path, TRAIN_REQUIRED[1:])
    assert "model.dataset.num_classes is required" in message and str(path) in message


def test_required_left_in_file_names_line(tmp_path):
    path = spec_file(tmp_path, "model:\n  dataset:\n    num_classes: ???\n")
    message = problems(TrainSpec, path, TRAIN_REQUIRED[1:])
    assert f"{path}:3" in message


def test_required_set_to_marker_on_command_line():
    message = problems(EvaluateSpec, None, ["test_ds.file_path=???"])
    assert "test_ds.file_path is required" in message
    assert "None" not in message


def test_wrong_type_for_required_field_is_one_problem():
    message = problems(TrainSpec, None, TRAIN_REQUIRED[1:] + ["model.dataset.num_classes=two"])
    assert "\n" not in message and "is required" not in message, message   # one problem: one line
    assert message.startswith("command line 'model.dataset.num_classes=two': model.dataset.num_classes must be"), message


@pytest.mark.parametrize("text", ["trainer: 5\n", "trainer: [1, 2]\n", "optim:\n  sched: adamw\n"])
def test_section_set_to_a_scalar_in_file(tmp_path, text):
    message = problems(TrainSpec, spec_file(tmp_path, text), TRAIN_REQUIRED)
    assert "is a section, not a value" in message


def test_section_set_to_a_scalar_on_command_line():
    message = problems(TrainSpec, None, TRAIN_REQUIRED + ["optim=adamw"])
    assert "optim is a section, not a value" in message


def test_empty_section_in_file_is_fine(tmp_path):
    spec = resolve_spec(TrainSpec, spec_file(tmp_path, "trainer:\noptim: {}\n"), TRAIN_REQUIRED)
    assert spec.trainer.max_epochs == 1


@pytest.mark.parametrize("item", ["trainer.max_epochs", "=3"])
def test_override_without_equals(item):
    with pytest.raises(UsageError) as info:
        resolve_spec(TrainSpec, None, TRAIN_REQUIRED + [item])
    assert item in str(info.value) and "key=value" in str(info.value)


def test_override_setting_a_whole_section():
    with pytest.raises(UsageError) as info:
        resolve_spec(TrainSpec, None, TRAIN_REQUIRED + ["trainer={max_epochs: 2}"])
    assert "section" in str(info.value)


def test_missing_and_invalid_spec_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        resolve_spec(TrainSpec, tmp_path / "nope.yaml", TRAIN_REQUIRED)
    with pytest.raises(UsageError) as info:
        resolve_spec(TrainSpec, spec_file(tmp_path, "trainer:\n  max_epochs: [\n"), TRAIN_REQUIRED)
    assert "not valid YAML" in str(info.value) and str(tmp_path / "spec.yaml") in str(info.value)
    with pytest.raises(UsageError, match="mapping"):
        resolve_spec(TrainSpec, spec_file(tmp_path, "- a\n- b\n"), TRAIN_REQUIRED)


def test_empty_spec_file_means_defaults(tmp_path):
    spec = resolve_spec(TrainSpec, spec_file(tmp_path, "# nothing\n"), TRAIN_REQUIRED)
    assert spec.trainer == TrainSpec().trainer


# ----------------------------------------------------------------------------- paths

def test_path_keys():
    assert path_keys(TrainSpec) == ["model.class_labels.class_labels_file", "model.language_model.lm_checkpoint",
                                    "training_ds.file_path", "validation_ds.file_path"]
    assert path_keys(EvaluateSpec) == ["test_ds.file_path"]
    assert path_keys(DatasetConvertSpec) == ["source_data_dir", "target_data_dir"]
    assert path_keys(InferSpec) == ["input_file"]
    for schema in SCHEMAS.values():
        keys = set(path_keys(schema))
        assert {k for k in leaf_fields(schema) if k.endswith("file_path")} <= keys
        assert not any(k.endswith(("batch_size", "num_samples")) for k in keys)


def test_map_paths_rewrites_only_set_path_fields():
    spec = resolve_spec(TrainSpec, None, TRAIN_REQUIRED)
    map_paths(spec, lambda p: "/host" + p)
    assert spec.training_ds.file_path == "/host/data/train.tsv"
    assert spec.validation_ds.file_path == "/host/data/dev.tsv"
    assert spec.model.class_labels.class_labels_file is None
    assert spec.model.language_model.pretrained_model_name == "all-minilm-l6-v2"


# ----------------------------------------------------------------------------- rendering

@pytest.mark.parametrize("subtask", sorted(SCHEMAS))
def test_render_yaml_reparses_to_defaults(subtask):
    schema = SCHEMAS[subtask]
    text = render_yaml(schema, f"title of {subtask}\nsecond line")
    assert yaml.safe_load(text) == dataclasses.asdict(schema())
    assert text.startswith("# title of")


@pytest.mark.parametrize("subtask", sorted(SCHEMAS))
def test_rendered_file_resolves_to_defaults(tmp_path, subtask):
    schema = SCHEMAS[subtask]
    path = spec_file(tmp_path, render_yaml(schema), f"{subtask}.yaml")
    needed = required_overrides(schema)
    assert to_dict(resolve_spec(schema, path, needed)) == to_dict(resolve_spec(schema, None, needed))
    # every ??? of the rendered file is still reported
    if needed:
        message = problems(schema, path)
        for item in needed:
            if leaf_fields(schema)[item.split("=")[0]].default == REQUIRED:   # not a rule's (num_classes)
                assert item.split("=")[0] + " is required" in message


@pytest.mark.parametrize("subtask", sorted(SCHEMAS))
def test_render_help_lists_every_field(subtask):
    schema = SCHEMAS[subtask]
    text = render_help(schema)
    for key, leaf in leaf_fields(schema).items():
        assert key in text
        if leaf.help:
            assert leaf.help in text


# ----------------------------------------------------------------------------- the parser's refusals

@pytest.mark.parametrize("text, expected", [
    (b"trainer:\n  seed: !!python/name:os.system\n", "spec.yaml:2: not valid YAML"),
    (b"a: &a [*a, *a]\nb: &b {x: *a, y: *a}\n" + b"".join(
        b"l%d: &l%d {a: *l%d, b: *l%d}\n" % (i, i, i - 1, i - 1) if i else b"l0: &l0 {a: 1, b: 2}\n"
        for i in range(40)), "more than 10000 values"),              # aliases that multiply
    (b"x: &x {y: *x}\n", "nests deeper than"),                       # a mapping that holds itself
    (b"? [a, b]\n: 1\n", "spec.yaml:1: not valid YAML"),              # a key that is a list
    (b"!!timestamp 2001-12-14{}\n", "cannot read the spec file"),   # PyYAML's own crash on odd scalars
    (b"trainer:\n  seed: 1\n  # caf\xe9\n", "spec.yaml:3: not UTF-8 text (byte 0xe9)"),
    (b"---\na: 1\n---\nb: 2\n", "not valid YAML"),                     # two documents
])
def test_every_parser_refusal_is_a_usage_error_with_the_line(tmp_path, text, expected):
    path = tmp_path / "spec.yaml"
    path.write_bytes(text)
    with pytest.raises(UsageError) as info:
        resolve_spec(TrainSpec, path, TRAIN_REQUIRED)
    assert expected in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("item, expected", [
    ("optim.betas=[0.9,", "cannot read override 'optim.betas=[0.9,': the value is not valid YAML"),
    ("optim.name='adamw", "not valid YAML"),
    ("optim.name=${", "not valid YAML"),
    ("optim.name=*a", "found undefined alias"),
    ("optim.name=!!set", "not valid YAML"),
    (" =1", "write it as key=value"),
    ("a..b=1", "write it as key=value"),
    ("a b=1", "write it as key=value"),
    ("x" * 200 + "=1", "..."),   # echoed cut short
])
def test_every_override_refusal_is_a_usage_error_naming_it(item, expected):
    with pytest.raises(UsageError) as info:
        resolve_spec(TrainSpec, None, TRAIN_REQUIRED + [item])
    message = str(info.value)
    assert expected in message and "\n" not in message and len(message) < 300
