"""Nothing lost, whatever the sequence of runs (docs/reliability.md, "What tao may delete"; issue 26): hypothesis
draws sequences of runs into one results folder (-r) and of dataset_convert runs into one target_data_dir, through
the real `tao` command, and after every step checks what must hold.

- Results folder: successful exports, exports failing after the folder was claimed (a damaged -m model), a train
  failing on a bad data line, a spec error the launcher refuses, and exports stopped at a pause point
  (core/faultpoints.py: writing the model archive; half way through setting the earlier run aside, through putting it
  back, or through removing it) by Ctrl-C to the process group, by kill -9 of the subtask or by kill -9 of tao (whose
  subtask then dies with it); each with or without --overwrite, into a folder that is new or that holds a file of the
  user's. After each step: a run is refused (exit 2, nothing touched) exactly when the folder holds another run or
  the user's file; the files of the last successful run are all there as they were (or, right after a kill -9,
  whole in .tao-replaced/ or .tao-moving/ for the next run to put back), and its model opens with the key; once a
  later run has ended, refused or not, nothing of a killed one is left (.tao-replaced/, .tao-tmp/, *.partial).
- Converters (text_classification sst2, token_classification CoNLL): user files put into the target (at a name the
  converter writes or not, or the source files themselves, to convert with target equal to source), converts from a
  good source, another good one and one with a bad line, with or without --overwrite. After each step: a failed or
  refused convert left the target byte for byte as it was; a successful one replaced a user's file only with
  --overwrite, kept every other one, and left exactly the files a fresh conversion of its source writes: the previous
  good conversion or the new one, never a mix.

Fixed seed (derandomize), no example database: the same sequences on every run (2 written out and 6 drawn for -r,
about 30 tao runs; 1 and 15 per converter). Runtime: about 2 minutes on 2 busy cores, most of it the -r runs (an
export of a tiny model takes 5 s). ``NO_DATA_LOSS_EXAMPLES=N`` multiplies the drawn examples for a longer hunt.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "nlp"))

from conftest import KEY, SAMPLE, tao, tao_env  # noqa: E402
from test_faults import Run  # noqa: E402
from tiny_models import tiny_archive  # noqa: E402

SCALE = int(os.environ.get("NO_DATA_LOSS_EXAMPLES", "1"))
PROPERTY = dict(deadline=None, database=None, derandomize=True, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow])
TC = "text_classification"
MODEL = "exported-model.eonnx"


def snapshot(folder: Path, skip=()) -> Optional[Dict[str, bytes]]:
    """Every file under ``folder`` (hidden ones too) as {relative path: bytes}; None when there is no folder."""
    if not folder.is_dir():
        return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] not in skip}


# ============================================================================= the results folder (-r)

@dataclass(frozen=True)
class Step:
    """One run into -r: ``kind`` ok | bad-model | bad-data | bad-spec | stop; a stop is an export held at the pause
    point ``point`` and then stopped ``how`` (ctrl-c, kill-subtask, kill-tao)."""
    kind: str
    overwrite: bool
    point: Optional[str] = None
    how: Optional[str] = None

    def __repr__(self):
        stop = f" at {self.point} by {self.how}" if self.kind == "stop" else ""
        return f"{self.kind}{stop}{' --overwrite' if self.overwrite else ''}"


# where an export is stopped: writing its model (any way), or (kill -9 only: a Ctrl-C waits for these to end) half
# way through setting the earlier run aside, through putting it back (after a damaged -m), or with the earlier run
# on its way out of a finished one (core/results.py)
KILLS = st.sampled_from(["kill-subtask", "kill-tao"])
STOP = st.one_of(st.tuples(st.just("archive-write"), st.sampled_from(["ctrl-c", "kill-subtask", "kill-tao"])),
                 st.tuples(st.sampled_from(["overwrite-aside", "put-back", "overwrite-done"]), KILLS))
STEPS = st.one_of(
    st.builds(Step, st.sampled_from(["ok", "ok", "bad-model", "bad-data", "bad-spec"]), st.booleans()),
    st.builds(lambda stop, overwrite: Step("stop", overwrite, *stop), STOP, st.booleans()))


@dataclass
class Expected:
    """What the test knows of -r: the model the property is checked against."""
    users: bool = False                         # a file of the user's was there before any run
    status: Optional[Tuple[str, str]] = None    # (subtask, state) status.json shows, once a pending put-back is done
    pending: bool = False                       # an --overwrite run was killed: .tao-replaced/ waits for the next run
    kept: Optional[Dict[str, bytes]] = None     # the files of the last successful run
    history: List[Step] = field(default_factory=list)

    def proceeds(self, subtask: str, overwrite: bool) -> bool:
        """Whether a run gets past the folder checks (results.py ``_prepare``) or is refused, exit 2."""
        if self.users:
            return False
        if self.status is None or overwrite:
            return True
        return self.status[0] == subtask and self.status[1] != "finished"   # the same run, unfinished: redone


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny text_classification archive, a damaged copy of it, and data with a bad line."""
    root = tmp_path_factory.mktemp("inputs")
    model = tiny_archive(TC, root / "tc.tao", KEY)
    (root / "damaged.tao").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    (root / "train.tsv").write_text("a fine film\t1\na dull film\t0\nno label here\nbad acting\t0\n")
    (root / "dev.tsv").write_text("a fine film\t1\na dull film\t0\n")
    return root


def command(step: Step, results: Path, inputs: Path) -> List:
    overwrite = ["--overwrite"] if step.overwrite else []
    if step.kind == "bad-data":
        return [TC, "train", "-r", results, "-k", KEY, *overwrite, "model.dataset.num_classes=2",
                f"training_ds.file_path={inputs / 'train.tsv'}", f"validation_ds.file_path={inputs / 'dev.tsv'}",
                "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
    model = inputs / ("damaged.tao" if step.kind == "bad-model" or step.point == "put-back" else "tc.tao")
    fmt = "PDF" if step.kind == "bad-spec" else "ONNX"
    return [TC, "export", "-r", results, "-m", model, "-k", KEY, *overwrite, f"export_format={fmt}"]


def run_step(step: Step, results: Path, inputs: Path, work: Path) -> Tuple[int, Optional[str], str]:
    """Run ``step``; returns (exit code, the pause point it was stopped at or None, its output)."""
    marks = Path(tempfile.mkdtemp(dir=work))
    extra = {"TMPDIR": str(work / "tmp")}
    if step.point:
        extra.update(TAO_TEST_PAUSE_AT=step.point, TAO_TEST_PAUSE_DIR=str(marks))
    run = Run(command(step, results, inputs), tao_env(work / "home", **extra))
    mark = marks / (step.point or "none")
    deadline = time.time() + 240
    while run.proc.poll() is None and not mark.exists():
        assert time.time() < deadline, f"{step!r}: neither ended nor reached its pause point:\n{run.output}"
        time.sleep(0.05)
    stopped = None
    if mark.exists():
        stopped = step.point
        if step.how == "ctrl-c":
            os.killpg(run.proc.pid, signal.SIGINT)
        elif step.how == "kill-subtask":
            os.kill(int(mark.read_text()), signal.SIGKILL)
        else:
            os.kill(run.proc.pid, signal.SIGKILL)   # tao itself: its subtask gets SIGKILL with it (PR_SET_PDEATHSIG)
    code = run.finish()
    if stopped and step.how == "kill-tao":
        wait_until_free(results, int(mark.read_text()))
    shutil.rmtree(marks)
    return code, stopped, run.output


def wait_until_free(results: Path, pid: int) -> None:
    """The subtask of a killed tao dies a moment after it: wait, so that the next step does not find it alive."""
    from tao_launcher.core.results import lock_holder

    deadline = time.time() + 60
    while lock_holder(results) is not None or Path(f"/proc/{pid}").exists() and not zombie(pid):
        assert time.time() < deadline, f"the subtask {pid} of the killed tao is still alive"
        time.sleep(0.05)


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def but_leftovers(results: Path) -> Optional[Dict[str, bytes]]:
    """Every file of -r but the temp files of a killed run (a refused run removes them too: they are no one's)."""
    files = snapshot(results, skip=(".tao-tmp",))
    return None if files is None else {k: v for k, v in files.items() if not k.endswith(".partial")}


def visible(results: Path) -> Dict[str, bytes]:
    """What a user finds in -r but the lock file, the log of a failed --overwrite attempt and the temp files that a
    kill -9 leaves for the next run to remove."""
    hidden = (".tao.lock", "log.failed-overwrite.txt")
    return {k: v for k, v in (but_leftovers(results) or {}).items() if k not in hidden}


def assert_opens(model: Path) -> None:
    from tao_launcher.core.model import opened_model_archive

    with opened_model_archive(model, KEY, TC, kinds=("eonnx",)) as folder:
        assert (folder / "model.onnx").stat().st_size > 10_000


def assert_no_leftovers(results: Path) -> None:
    left = [p.name for p in results.iterdir() if p.name in (".tao-replaced", ".tao-moving", ".tao-tmp")]
    left += [p.relative_to(results).as_posix() for p in results.rglob("*.partial")]
    assert not left, left


def recoverable(results: Path, kept: Dict[str, bytes]) -> bool:
    """Each file of the last successful run is whole, in its place or set aside for the next run to put back."""
    return all(any((where / name).is_file() and (where / name).read_bytes() == data
                   for where in (results, results / ".tao-replaced", results / ".tao-moving"))
               for name, data in kept.items())


def check_step(expect: Expected, step: Step, results: Path, inputs: Path, work: Path) -> None:
    """Run ``step``, check the property, and move ``expect`` on."""
    from tao_launcher.core.results import read_status

    subtask = "train" if step.kind == "bad-data" else "export"
    before, previous = but_leftovers(results), expect.status
    proceeds = step.kind != "bad-spec" and expect.proceeds(subtask, step.overwrite)
    aside = proceeds and step.overwrite and previous is not None   # --overwrite sets the earlier run aside
    base = "bad-model" if step.point == "put-back" else "ok" if step.kind == "stop" else step.kind
    reaches = {None: False, "archive-write": proceeds and base == "ok", "overwrite-aside": aside,
               "put-back": expect.pending and step.kind != "bad-spec" or aside,
               "overwrite-done": aside and base == "ok"}[step.point]
    code, stopped, output = run_step(step, results, inputs, work)
    expect.history.append(step)
    said = f"after {expect.history}: exit {code}\n{output[-3000:]}"
    assert stopped == (step.point if reaches else None), said
    kill_code = 128 + signal.SIGKILL if step.how == "kill-subtask" else -signal.SIGKILL

    if stopped in ("overwrite-aside", "put-back"):   # killed half way: the next run puts the earlier run back
        assert code == kill_code, said
        expect.pending = True
    elif stopped == "overwrite-done":   # killed once finished: the new run stays, the next run removes the old
        assert code == kill_code, said
        expect.status, expect.kept, expect.pending = (subtask, "finished"), visible(results), False
    elif not proceeds:   # refused before it started: exit 2, one sentence, nothing touched
        assert code == 2, said
        errors = [line for line in output.splitlines() if line.startswith("tao: error: ")]
        assert len(errors) == 1 and "Traceback" not in output, said
        if step.kind == "bad-spec" or not expect.pending:
            assert but_leftovers(results) == before, f"a refused run changed -r; {said}"
        expect.pending = expect.pending and step.kind == "bad-spec"   # else put back first, and then refused
    else:
        expect.pending = False
        if not stopped and base == "ok":
            assert code == 0, said
            expect.status, expect.kept = (subtask, "finished"), visible(results)
            assert_opens(results / MODEL)
        elif not stopped:
            assert code == 1, said
            expect.status = previous if aside else (subtask, "failed")
        elif step.how == "ctrl-c":
            assert code == 130, said
            expect.status = previous if aside else (subtask, "interrupted")
        elif step.how == "kill-subtask":   # tao records the kill, and puts back what --overwrite set aside
            assert code == kill_code and "killed by SIGKILL" in output, said
            expect.status = previous if aside else (subtask, "failed")
        else:   # kill -9 of tao: nothing recorded; the next run puts back what --overwrite set aside
            assert code == kill_code, said
            expect.status, expect.pending = (previous, True) if aside else ((subtask, "dead"), False)

    if step.kind != "bad-spec" and (not stopped or step.how == "ctrl-c" or (stopped, step.how) == (
            "archive-write", "kill-subtask")) and results.is_dir():   # tao (or the next run) cleans after a kill
        assert_no_leftovers(results)
    if expect.users:
        assert snapshot(results) == {"notes.txt": b"my own notes"}, said
        return
    if expect.kept is None:
        assert not (results / MODEL).exists(), said
    elif expect.pending:
        assert recoverable(results, expect.kept), f"the last successful run is not whole; {said}"
    else:
        assert visible(results) == expect.kept, f"-r is not the last successful run; {said}"
    if expect.status is not None and not expect.pending:
        status = read_status(results)
        assert (status.get("subtask"), status.get("state")) == expect.status, said


@settings(max_examples=6 * SCALE, **PROPERTY)
@given(users=st.booleans(), steps=st.lists(STEPS, min_size=2, max_size=5))
@example(users=False, steps=[Step("ok", False), Step("stop", True, "archive-write", "kill-tao"), Step("ok", False),
                             Step("bad-data", True), Step("ok", True)])
@example(users=False, steps=[Step("ok", False), Step("stop", True, "overwrite-aside", "kill-subtask"),
                             Step("stop", True, "put-back", "kill-tao"),
                             Step("stop", True, "overwrite-done", "kill-tao"), Step("bad-model", False)])
def test_no_sequence_of_runs_loses_the_last_model_or_a_users_file(inputs, users, steps):
    with tempfile.TemporaryDirectory(prefix="tao-ndl-") as folder:
        work = Path(folder)
        for name in ("home", "tmp"):
            (work / name).mkdir()
        results = work / "r"
        expect = Expected(users=users)
        if users:
            results.mkdir()
            (results / "notes.txt").write_text("my own notes")
        for step in steps:
            check_step(expect, step, results, inputs, work)
        if expect.pending:   # the next run, even a refused one, puts the last successful run back
            check_step(expect, Step("ok", False), results, inputs, work)
        if expect.kept is not None:
            assert_opens(results / MODEL)


# ============================================================================= dataset_convert's target_data_dir

RECORD = ".tao-convert.json"
CONLL_A = {"eng.train": "Jim B-PER\nran O\n\nin O\nParis B-LOC\n\nAnn B-PER\nlives O\nhere O\n",
           "eng.testa": "Rome B-LOC\nwaits O\n"}
CONLL_B = {"eng.train": "Bob B-PER\nsat O\n\nin O\nOslo B-LOC\n", "eng.testa": "Ulm B-LOC\n"}


def sst2_sample(lines: Optional[int] = None) -> Dict[str, str]:
    """The packaged SST-2 sample (its first ``lines`` lines of each file)."""
    return {name: "".join((SAMPLE / name).read_text().splitlines(keepends=True)[:lines]) for name in ("train.tsv",
                                                                                                       "dev.tsv")}


def with_bad_line(files: Dict[str, str], name: str, number: int, bad: str) -> Dict[str, str]:
    lines = files[name].splitlines(keepends=True)
    lines[min(number, len(lines)) - 1] = bad + "\n"
    return {**files, name: "".join(lines)}


@dataclass(frozen=True)
class Converter:
    """One dataset_convert: its arguments but the folders, its sources (good ones a and b, and bad ones with a bad
    line near the start or the end), the name of a file it writes and of one it never writes."""
    task: str
    args: Tuple[str, ...]
    sources: Dict[str, Dict[str, str]]
    writes: str
    other: str = "notes.txt"

    def reference(self, files: Dict[str, bytes]) -> Tuple[int, Dict[str, bytes]]:
        """(exit code, files written) of this convert of a source holding ``files`` into a new target, in-process:
        what the same convert leaves in a target where nothing is in its way."""
        import importlib

        from tao_launcher.errors import DataError, UsageError

        convert = importlib.import_module(f"tao_launcher.tasks.{self.task}.data").convert
        with tempfile.TemporaryDirectory() as folder:
            source, target = Path(folder) / "source", Path(folder) / "target"
            source.mkdir()
            for name, data in files.items():
                (source / name).write_bytes(data)
            try:
                convert(*[a.split("=", 1)[1] for a in self.args], source, target)
            except UsageError:
                return 2, {}
            except DataError:
                return 1, {}
            return 0, {k: v for k, v in snapshot(target).items() if k != RECORD}

    def names(self) -> set:
        """The files a good source gives (every source here has the same splits)."""
        return set(self.reference({n: t.encode() for n, t in self.sources["a"].items()})[1])


CONVERTERS = {
    "text_classification": Converter(
        TC, ("dataset_name=sst2",), {
            "a": sst2_sample(), "b": sst2_sample(21),
            "bad-start": with_bad_line(sst2_sample(), "train.tsv", 2, "no label here"),
            "bad-end": with_bad_line(sst2_sample(), "dev.tsv", 1000, "a fine film\t7")}, "train.tsv"),
    "token_classification": Converter(
        "token_classification", (), {
            "a": CONLL_A, "b": CONLL_B,
            "bad-start": with_bad_line(CONLL_A, "eng.train", 1, "Jim"),
            "bad-end": with_bad_line(CONLL_A, "eng.testa", 1000, "waits X-TAG")}, "text_train.txt"),
}


@dataclass(frozen=True)
class ConvertStep:
    """``put`` a file of the user's into the target (``what``: at a name the convert writes, at one it never
    writes, or the source files themselves), or ``convert`` from source ``what`` (a, b, bad-*, or the target)."""
    kind: str
    what: str
    overwrite: bool = False

    def __repr__(self):
        return f"{self.kind} {self.what}{' --overwrite' if self.overwrite else ''}"


CONVERTS = st.builds(ConvertStep, st.just("convert"), st.sampled_from(["a", "a", "b", "bad-start", "bad-end",
                                                                     "target"]), st.booleans())
CONVERT_STEPS = st.one_of(st.builds(ConvertStep, st.just("put"), st.sampled_from(["writes", "other", "source"])),
                          CONVERTS, CONVERTS)


def convert_step(converter: Converter, step: ConvertStep, target: Path, user: Dict[str, bytes], work: Path,
                 history: List) -> None:
    """Take ``step``, check the property, and update ``user`` (the user's files that must still be there)."""
    from tao_launcher.core.convert import written

    history.append(step)
    if step.kind == "put":
        files = {"writes": {converter.writes: f"the user's own {converter.writes}\n"},
                 "other": {converter.other: "my own notes\n"}, "source": converter.sources["a"]}[step.what]
        target.mkdir(exist_ok=True)
        for name, text in files.items():
            if not (target / name).exists():   # a new file; editing one that convert wrote is not this test's
                (target / name).write_text(text)
                user[name] = text.encode()
        return
    if step.what == "target":
        source, code, files = target, *converter.reference(user)
    else:
        source = work / step.what
        if not source.exists():
            source.mkdir()
            for name, text in converter.sources[step.what].items():
                (source / name).write_text(text)
        code, files = converter.reference(snapshot(source))
    names = set(files) if code == 0 else converter.names()   # a failing convert: those a good one writes
    in_the_way = sorted(names & set(user))
    before = snapshot(target)
    proc = tao(converter.task, "dataset_convert", "-r", Path(tempfile.mkdtemp(dir=work)) / "r", *converter.args,
               f"source_data_dir={source}", f"target_data_dir={target}", *(["--overwrite"] if step.overwrite else []))
    said = f"after {history}: exit {proc.returncode}\n{proc.stderr[-3000:]}"

    if in_the_way and not step.overwrite:
        assert proc.returncode == 2 and "which dataset_convert did not write" in proc.stderr, said
    elif step.what == "target" and code != 0:
        assert proc.returncode in (code, 2), said   # its own files are no source: refused, or the same error
    else:
        assert proc.returncode == code, said
    if proc.returncode != 0:   # refused or failed: the target as it was, byte for byte, and no staging folder
        assert snapshot(target) == before, f"a failed convert changed the target; {said}"
        return
    for name in in_the_way:   # replaced, with the user's consent
        del user[name]
    after = snapshot(target)
    record = after.pop(RECORD)
    assert after == {**user, **files}, f"the target is not the user's files and the new conversion; {said}"
    assert written(target) == set(files), f"{record.decode()}; {said}"


@pytest.mark.parametrize("task", sorted(CONVERTERS))
@settings(max_examples=15 * SCALE, **PROPERTY)
@given(steps=st.lists(CONVERT_STEPS, min_size=3, max_size=7))
@example(steps=[ConvertStep("put", "writes"), ConvertStep("put", "other"), ConvertStep("convert", "a"),
                ConvertStep("convert", "a", True), ConvertStep("convert", "bad-end", True), ConvertStep("convert", "b"),
                ConvertStep("put", "source"), ConvertStep("convert", "target"), ConvertStep("convert", "target", True)])
def test_no_sequence_of_converts_loses_a_users_file_or_mixes_two_conversions(task, steps):
    converter = CONVERTERS[task]
    with tempfile.TemporaryDirectory(prefix="tao-ndl-convert-") as folder:
        work, user, history = Path(folder), {}, []
        for step in steps:
            convert_step(converter, step, work / "data", user, work, history)


# a source with one more split than the next one (SST-2's test.tsv, CoNLL's eng.testb)
MORE_SPLITS = {TC: {**sst2_sample(), "test.tsv": "index\tsentence\n0\ta film\n"},
               "token_classification": {**CONLL_A, "eng.testb": "Kiel B-LOC\n"}}


@pytest.mark.parametrize("task", sorted(CONVERTERS))
def test_a_rerun_from_a_source_with_fewer_splits_leaves_nothing_of_the_earlier_conversion(task, tmp_path):
    converter = CONVERTERS[task]
    for name, files in (("more", MORE_SPLITS[task]), ("fewer", converter.sources["b"])):
        (tmp_path / name).mkdir()
        for file, text in files.items():
            (tmp_path / name / file).write_text(text)
        proc = tao(task, "dataset_convert", "-r", tmp_path / f"r-{name}", *converter.args,
                   f"source_data_dir={tmp_path / name}", f"target_data_dir={tmp_path / 'data'}")
        assert proc.returncode == 0, proc.stderr
    _, fresh = converter.reference(snapshot(tmp_path / "fewer"))
    assert {k: v for k, v in snapshot(tmp_path / "data").items() if k != RECORD} == fresh
