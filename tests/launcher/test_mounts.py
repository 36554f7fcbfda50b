"""The mounts file (~/.tao_mounts.json) and host <-> container path mapping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import conftest

from tao_launcher.errors import UsageError
from tao_launcher.launcher import mounts as mounts_mod
from tao_launcher.launcher.mounts import Mount, MountsConfig, load_mounts, mounts_file_path
from tao_launcher.paths import PathMap

REPO = Path(__file__).resolve().parents[2]
SPEC_FILES = {"dataset_convert.yaml", "train.yaml", "finetune.yaml", "evaluate.yaml", "infer.yaml",
              "export.yaml", "infer_onnx.yaml"}


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    monkeypatch.delenv("TAO_MOUNTS_FILE", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def folders(root: Path, *names: str):
    out = []
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        out.append(root / name)
    return out


def expect_usage_error(path: Path, *fragments: str) -> str:
    with pytest.raises(UsageError) as info:
        load_mounts(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ----------------------------------------------------------------------------- parsing

def test_valid_file(tmp_path, clean_env, monkeypatch):
    data, cache = folders(tmp_path, "data", "cache")
    (clean_env / "specs").mkdir()
    monkeypatch.setenv("TAO_TEST_CACHE", str(cache))
    path = write(tmp_path / "m.json", {
        "Mounts": [{"source": str(data), "destination": "/data", "read_only": True},
                   {"source": "~/specs", "destination": "/specs/"},
                   {"source": "$TAO_TEST_CACHE", "destination": "/cache"}],
        "Envs": [{"variable": "HF_HOME", "value": "/cache/hf"}, {"variable": "N", "value": 3}],
        "DockerOptions": {"shm_size": "16G", "ulimits": {"memlock": -1}, "user": "1000:1000"},
        "Runner": "local"})
    config = load_mounts(path)
    assert config.path == path
    assert config.mounts == [Mount(data, "/data", True), Mount(clean_env / "specs", "/specs", False),
                             Mount(cache, "/cache", False)]
    assert config.envs == {"HF_HOME": "/cache/hf", "N": "3"}
    assert config.docker_options == {"shm_size": "16G", "ulimits": {"memlock": -1}, "user": "1000:1000"}
    assert config.runner == "local"


def test_empty_object_is_valid(tmp_path):
    config = load_mounts(write(tmp_path / "m.json", {}))
    assert config.mounts == [] and config.envs == {} and config.docker_options == {}


def test_example_file_is_valid(clean_env):
    """The shipped .tao_mounts.example.json parses once its folders exist."""
    example = REPO / ".tao_mounts.example.json"
    for mount in json.loads(example.read_text())["Mounts"]:
        Path(os.path.expanduser(mount["source"])).mkdir(parents=True, exist_ok=True)
    config = load_mounts(example)
    assert {m.destination for m in config.mounts} >= {"/data", "/specs", "/results"}


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path / "m.json", {"Mount": []})
    expect_usage_error(path, '"Mount"', "top level", "Mounts")


def test_unknown_key_in_mount(tmp_path):
    (data,) = folders(tmp_path, "data")
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(data), "destination": "/data", "readonly": True}]})
    expect_usage_error(path, '"readonly"', "Mounts[0]", "read_only")


def test_mount_without_destination(tmp_path):
    (data,) = folders(tmp_path, "data")
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(data)}]})
    expect_usage_error(path, "Mounts[0]", "destination")


def test_missing_source_folder(tmp_path):
    missing = tmp_path / "not-there"
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(missing), "destination": "/data"}]})
    expect_usage_error(path, str(missing), "does not exist", "Mounts[0]")


def test_two_mounts_on_one_destination(tmp_path):
    a, b = folders(tmp_path, "a", "b")
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(a), "destination": "/data"},
                                                  {"source": str(b), "destination": "/data/"}]})
    expect_usage_error(path, "Mounts[1]", "/data", str(a), str(b))


def test_relative_destination(tmp_path):
    (a,) = folders(tmp_path, "a")
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(a), "destination": "data"}]})
    expect_usage_error(path, "'data'", "absolute")


def test_bad_json_names_line(tmp_path):
    path = write(tmp_path / "m.json", '{\n  "Mounts": [\n    {"source": "/x",}\n  ]\n}\n')
    expect_usage_error(path, f"{path}:3:", "not valid JSON")


def test_not_an_object(tmp_path):
    expect_usage_error(write(tmp_path / "m.json", "[]"), "JSON object")


def test_unknown_runner(tmp_path):
    expect_usage_error(write(tmp_path / "m.json", {"Runner": "podman"}), "podman", "docker", "local")


def test_unknown_docker_option(tmp_path):
    expect_usage_error(write(tmp_path / "m.json", {"DockerOptions": {"shm-size": "1G"}}),
                       '"shm-size"', "shm_size")


@pytest.mark.parametrize("data", [{"Mounts": 5}, {"DockerOptions": 5}, {"DockerOptions": [{"shm_size": "1G"}]}],
                         ids=["mounts-number", "options-number", "options-list"])
def test_section_of_wrong_type(tmp_path, data):
    expect_usage_error(write(tmp_path / "m.json", data))


def test_read_only_must_be_a_boolean(tmp_path):
    (a,) = folders(tmp_path, "a")
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(a), "destination": "/a", "read_only": "false"}]})
    expect_usage_error(path, "read_only")


# ----------------------------------------------------------------------------- which file

def test_missing_explicit_file_is_an_error(tmp_path, monkeypatch):
    missing = tmp_path / "nope.json"
    monkeypatch.setenv("TAO_MOUNTS_FILE", str(missing))
    assert mounts_file_path() == missing
    with pytest.raises(UsageError) as info:
        load_mounts()
    assert str(missing) in str(info.value) and "TAO_MOUNTS_FILE" in str(info.value)


def test_missing_default_file_means_no_mounts(clean_env):
    assert mounts_file_path() == clean_env / ".tao_mounts.json"
    config = load_mounts()
    assert config == MountsConfig()


def test_default_file_is_read(tmp_path, clean_env):
    (a,) = folders(tmp_path, "a")
    write(clean_env / ".tao_mounts.json", {"Mounts": [{"source": str(a), "destination": "/a"}]})
    config = load_mounts()
    assert config.path == clean_env / ".tao_mounts.json"
    assert config.mounts == [Mount(a, "/a")]


def test_env_file_wins_over_default(tmp_path, clean_env, monkeypatch):
    a, b = folders(tmp_path, "a", "b")
    write(clean_env / ".tao_mounts.json", {"Mounts": [{"source": str(a), "destination": "/a"}]})
    other = write(tmp_path / "other.json", {"Mounts": [{"source": str(b), "destination": "/b"}]})
    monkeypatch.setenv("TAO_MOUNTS_FILE", str(other))
    assert load_mounts().mounts == [Mount(b, "/b")]


# ----------------------------------------------------------------------------- PathMap

@pytest.fixture
def two_mounts(tmp_path):
    data, results = folders(tmp_path, "data", "results")
    return data, results, PathMap([Mount(data, "/data"), Mount(results, "/results")])


def test_host_paths_map_to_container(two_mounts):
    data, results, pm = two_mounts
    assert pm.to_container(str(data / "sst2" / "train.tsv"), "x") == "/data/sst2/train.tsv"
    assert pm.to_container(str(data), "x") == "/data"
    assert pm.to_container(str(results / "tc"), "x") == "/results/tc"


def test_home_and_relative_host_paths(tmp_path, clean_env, monkeypatch):
    (data,) = folders(clean_env, "tao/data")
    pm = PathMap([Mount(data, "/data")])
    assert pm.to_container("~/tao/data/a.tsv", "x") == "/data/a.tsv"
    monkeypatch.chdir(clean_env / "tao")
    assert pm.to_container("data/b.tsv", "x") == "/data/b.tsv"


def test_container_paths_stay(two_mounts):
    _, _, pm = two_mounts
    assert pm.to_container("/data/sst2/train.tsv", "x") == "/data/sst2/train.tsv"
    assert pm.to_container("/results", "x") == "/results"


def test_sibling_with_common_prefix_is_not_under_mount(tmp_path):
    data, data2 = folders(tmp_path, "data", "data2")
    pm = PathMap([Mount(data, "/data")])
    with pytest.raises(UsageError):
        pm.to_container(str(data2 / "x.tsv"), "x")
    assert pm.to_host("/data2/x") == "/data2/x"


@pytest.mark.parametrize("order", [1, -1], ids=["outer-first", "inner-first"])
def test_nested_mounts_choose_longest_prefix(tmp_path, order):
    outer, inner, other = folders(tmp_path, "outer", "outer/inner", "other")
    pm = PathMap([Mount(outer, "/work"), Mount(inner, "/fast"), Mount(other, "/work/special")][::order])
    # host -> container: the most specific source
    assert pm.to_container(str(inner / "x"), "x") == "/fast/x"
    assert pm.to_container(str(outer / "y"), "x") == "/work/y"
    # container -> host: the most specific destination
    assert pm.to_host("/work/special/z") == str(other / "z")
    assert pm.to_host("/work/z") == str(outer / "z")
    assert pm.to_host("/fast/x") == str(inner / "x")


def test_path_under_no_mount_names_a_mount_to_add(two_mounts, tmp_path):
    _, _, pm = two_mounts
    elsewhere = tmp_path / "elsewhere" / "x.tsv"
    with pytest.raises(UsageError) as info:
        pm.to_container(str(elsewhere), "training file")
    message = str(info.value)
    assert "training file" in message and str(elsewhere) in message
    assert f'"source": "{elsewhere.parent}"' in message and '"destination"' in message
    assert '"Mounts"' in message


@pytest.mark.parametrize("rel", ["", "a.tsv", "sub/dir/b.tsv"])
def test_to_host_round_trips(two_mounts, rel):
    data, results, pm = two_mounts
    for source in (data, results):
        host = str(source / rel) if rel else str(source)
        assert pm.to_host(pm.to_container(host, "x")) == host


def test_to_host_leaves_unmapped_paths(two_mounts):
    _, _, pm = two_mounts
    assert pm.to_host("/elsewhere/x") == "/elsewhere/x"
    assert pm.to_host("relative/x") == "relative/x"


def test_json_round_trip(two_mounts):
    data, results, pm = two_mounts
    again = PathMap.from_json(pm.to_json())
    assert again.to_host("/data/a") == str(data / "a")
    assert again.to_container(str(results / "r"), "x") == "/results/r"
    assert PathMap.from_json("").to_host("/data/a") == "/data/a"


def test_source_through_a_symlink(tmp_path):
    (real,) = folders(tmp_path, "real/sub")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real")
    path = write(tmp_path / "m.json", {"Mounts": [{"source": str(link), "destination": "/data"}]})
    pm = PathMap(load_mounts(path).mounts)
    assert pm.to_container(str(link / "sub" / "x.tsv"), "x") == "/data/sub/x.tsv"


# ----------------------------------------------------------------------------- end to end

@pytest.fixture
def tao_with_mounts(tmp_path, clean_env):
    specs, results = folders(tmp_path, "specs", "results")
    mounts_file = write(tmp_path / "mounts.json", {"Mounts": [{"source": str(specs), "destination": "/specs"},
                                                              {"source": str(results), "destination": "/results"}]})
    env = conftest.tao_env(clean_env, TAO_MOUNTS_FILE=str(mounts_file))

    def run(*args):
        return conftest.tao(*args, env=env, timeout=60, cwd=tmp_path)

    run.mounts_file = mounts_file
    return run


def test_docker_runner_maps_container_and_host_paths(tao_with_mounts, tmp_path):
    """The mounts file is the Docker runner's: -o by container path or by host path under a mount."""
    for given in ("/specs/tc", "specs/tc"):
        proc = tao_with_mounts("text_classification", "download_specs", "-o", given, "-r", "/results/dl",
                               "--runner", "docker", "--dry-run")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "-o /specs/tc" in proc.stdout and "-r /results/dl" in proc.stdout
        assert f"{tmp_path / 'specs'}:/specs" in proc.stdout
    assert not (tmp_path / "specs" / "tc").exists()   # a dry run writes nothing


def test_download_specs_under_no_mount(tao_with_mounts, tmp_path):
    proc = tao_with_mounts("text_classification", "download_specs", "-o", "/elsewhere/x", "-r", "/results/dl",
                           "--runner", "docker")
    assert proc.returncode == 2
    assert "/elsewhere/x" in proc.stderr
    assert "mounts file" in proc.stderr and '"Mounts"' in proc.stderr and '"source"' in proc.stderr
    assert "tao: running" not in proc.stderr
    assert "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- the local runner ignores it

@pytest.mark.parametrize("how", ["flag", "env", "mounts-file"])
def test_a_mounts_file_never_stops_a_local_run(tmp_path, clean_env, how):
    """A leftover ~/.tao_mounts.json (the README's container section writes one) cannot break a local
    run: host paths are used as given, even outside every mount, a container path is read as its host
    folder, and no Envs reach the subtask."""
    (clean_env / "data").mkdir()
    write(clean_env / ".tao_mounts.json", {
        "Mounts": [{"source": str(clean_env / "data"), "destination": "/data"}],
        "Envs": [{"variable": "TAO_TEST_FROM_MOUNTS", "value": "1"}],
        "Runner": "local" if how == "mounts-file" else "docker"})
    env = conftest.tao_env(clean_env)
    env.pop("TAO_RUNNER")
    flags = ["--runner", "local"] if how == "flag" else []
    if how == "env":
        env["TAO_RUNNER"] = "local"
    proc = conftest.tao("text_classification", "download_specs", "-o", "specs", "-r", "results/dl", *flags,
                        env=env, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in (tmp_path / "specs").iterdir()} == SPEC_FILES   # relative to the current folder
    assert (tmp_path / "results" / "dl" / "status.json").is_file()
    assert f"container paths under a mount of {clean_env / '.tao_mounts.json'}" in proc.stderr
    dry = conftest.tao("text_classification", "download_specs", "-o", "/data/x", *flags, "--dry-run",
                       env=env, timeout=60, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert f"-o {clean_env / 'data' / 'x'}" in dry.stdout and "TAO_TEST_FROM_MOUNTS" not in dry.stdout


@pytest.mark.parametrize("content", ['{"Mounts": [', '{"Mounts": [{"source": "/nowhere/at/all", "destination": "/d"}]}'],
                         ids=["broken-json", "missing-source"])
def test_local_runner_asked_for_does_not_read_the_mounts_file(tmp_path, clean_env, content):
    write(clean_env / ".tao_mounts.json", content)
    proc = conftest.tao("text_classification", "download_specs", "-o", "specs", "--runner", "local",
                        env=conftest.tao_env(clean_env), timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "specs" / "train.yaml").is_file()
    info = conftest.tao("info", env=conftest.tao_env(clean_env), timeout=60, cwd=tmp_path)
    assert info.returncode == 2 and str(clean_env / ".tao_mounts.json") in info.stderr   # still reported there


# ----------------------------------------------------------------------------- relative sources

def test_relative_source_is_read_from_the_mounts_file_folder(tmp_path, monkeypatch):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    path = write(tmp_path / "conf" / "m.json", {"Mounts": [{"source": "data", "destination": "/data"},
                                                           {"source": "./data/../data", "destination": "/d2"}]})
    monkeypatch.chdir(tmp_path)   # a folder where ./data does not exist
    config = load_mounts(path)
    assert [m.source for m in config.mounts] == [tmp_path / "conf" / "data"] * 2
    assert config.mounts[0].relative == "data"


def test_relative_source_that_does_not_exist_says_where_it_was_looked_for(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()      # exists beside the current folder, not beside the file
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf" / "m.json", {"Mounts": [{"source": "data", "destination": "/data"}]})
    monkeypatch.chdir(tmp_path)
    expect_usage_error(path, str(tmp_path / "conf" / "data"), "'data' is read from the mounts file's folder")


def test_info_shows_a_relative_source_resolved(tmp_path, clean_env):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    path = write(tmp_path / "conf" / "m.json", {"Mounts": [{"source": "data", "destination": "/data"}]})
    proc = conftest.tao("info", env=conftest.tao_env(clean_env, TAO_MOUNTS_FILE=str(path)), timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "-> /data" in line)
    assert str(tmp_path / "conf" / "data") in line and "relative" in line and "mounts file's folder" in line
    assert "used by the Docker runner only" in proc.stdout


def test_spec_file_error_through_mount_names_line(tao_with_mounts, tmp_path):
    """-e by container path: the spec is checked on the host, errors still carry file:line."""
    (tmp_path / "specs" / "train.yaml").write_text("trainer:\n  max_epochs: 2\n  max_epoch: 3\n")
    proc = tao_with_mounts("text_classification", "train", "-e", "/specs/train.yaml", "-r", "/results/tc",
                           "-k", "k", "model.dataset.num_classes=2", "training_ds.file_path=/specs/a.tsv",
                           "validation_ds.file_path=/specs/b.tsv", "--runner", "docker")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "train.yaml:3: unknown key trainer.max_epoch" in proc.stderr
    assert not (tmp_path / "results" / "tc").exists()


def test_override_path_under_no_mount(tao_with_mounts, tmp_path):
    proc = tao_with_mounts("text_classification", "train", "-r", "/results/tc", "-k", "k",
                           "model.dataset.num_classes=2", "training_ds.file_path=/nowhere/train.tsv",
                           "validation_ds.file_path=/specs/b.tsv", "--runner", "docker")
    assert proc.returncode == 2
    assert "training_ds.file_path" in proc.stderr and "/nowhere/train.tsv" in proc.stderr
    assert not (tmp_path / "results" / "tc").exists()
