"""``tao``: the host-side command line. ``tao <task> <subtask> [flags] [key=value ...]``.

Tasks and subtasks come from the task table; the spec schema of a subtask is imported only
when that subtask is named, so ``tao --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import difflib
import os
import sys

import click

from tao_launcher import __version__
from tao_launcher.errors import EXIT_INTERRUPTED, TaoError, UsageError
from tao_launcher.registry import RUNNERS, TASKS

SUBTASK_HELP = {
    "download_specs": "copy the default spec files of the task into -o DIR",
    "dataset_convert": "convert a public dataset into the task's training format",
    "train": "train a model from a pretrained encoder; writes checkpoints/trained-model.tao",
    "finetune": "continue training a -m model archive on new data",
    "evaluate": "score a -m model archive on labelled test data",
    "infer": "run a -m model archive on sentences from the spec or a file",
    "export": "export a -m model archive: .riva, encrypted ONNX (.eonnx), a Triton repository, or plain files",
    "infer_onnx": "run an exported ONNX model through onnxruntime",
}


RUNNER_HELP = ("where to run; default: TAO_RUNNER, else the mounts file's Runner, else docker where an "
               "engine answers, the mounts file has Mounts and the image is built, else local")


class ClosestMatchGroup(click.Group):
    """A group whose unknown-command error names the closest valid command."""

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and self.get_command(ctx, name) is None and not name.startswith("-"):
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise click.UsageError(f"no such {self.kind} '{name}'.{hint} "
                                   f"'{ctx.command_path} --help' lists them.", ctx)
        return super().resolve_command(ctx, args)

    kind = "command"


class TaoGroup(ClosestMatchGroup):
    kind = "task or command"

    def list_commands(self, ctx):
        return list(TASKS) + sorted(self.commands)

    def get_command(self, ctx, name):
        if name in TASKS:
            return TaskGroup(TASKS[name])
        return self.commands.get(name)

    def format_commands(self, ctx, formatter):
        with formatter.section("Tasks"):
            formatter.write_dl([(name, t.summary) for name, t in TASKS.items()])
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.help) for name, cmd in sorted(self.commands.items())])


class TaskGroup(ClosestMatchGroup):
    kind = "subtask"

    def __init__(self, task):
        self.task = task
        super().__init__(name=task.name, help=f"{task.summary}.\n\nRun 'tao {task.name} "
                         f"SUBTASK --help' for a subtask's spec fields and an example.",
                         short_help=task.summary)

    def list_commands(self, ctx):
        return list(self.task.subtasks)

    def get_command(self, ctx, name):
        if name not in self.task.subtasks:
            return None
        return make_subtask_command(self.task, name)


def make_subtask_command(task, subtask: str) -> click.Command:
    schema = None
    if subtask != "download_specs":
        schema = task.subtasks[subtask].schema()
        from tao_launcher.spec.render import render_help
        epilog = ("\b\nSpec fields (set them in the -e file or as key=value):\n" + render_help(schema)
                  + "\n\n\b\nExample:\n  " + schema.example)
    else:
        epilog = (f"\b\nExample:\n  tao {task.name} download_specs -r /results/{task.name}/download_specs "
                  f"-o /specs/{task.name}")

    results_help = ("optional results folder for log.txt and status.json" if subtask == "download_specs"
                    else "results folder: log.txt, status.json, outputs (required)")

    # short_help: the whole sentence in 'tao TASK --help', where click would cut it at 45 characters
    @click.command(name=subtask, help=SUBTASK_HELP[subtask] + ".",
                   short_help=SUBTASK_HELP[subtask], epilog=epilog,
                   context_settings={"ignore_unknown_options": True, "max_content_width": 120})
    @click.option("-e", "--experiment-spec", "spec", help="spec file (YAML); defaults are used when omitted")
    @click.option("-r", "--results-dir", "results", help=results_help)
    @click.option("-k", "--key", "key", help="model encryption key (or set TAO_KEY; it is never printed)")
    @click.option("-g", "--gpus", "gpus", type=int, default=1, show_default=True, help="number of GPUs (CPU processes where there is none)")
    @click.option("--gpu-index", "gpu_index", metavar="I,J", help="which GPUs to use, by number (sets -g to their count)")
    @click.option("-m", "--model", "model", help="model archive (.tao, or .riva/.eonnx for infer_onnx)")
    @click.option("-o", "--output-dir", "output", help="output folder (download_specs)")
    @click.option("--overwrite", is_flag=True, help="replace a finished run in -r (or files in -o, or "
                  "files in dataset_convert's target_data_dir that no convert wrote)")
    @click.option("--runner", type=click.Choice(list(RUNNERS)), help=RUNNER_HELP)
    @click.option("--dry-run", is_flag=True, help="print the command (docker run ... or the local one) "
                  "with the key masked, and run nothing")
    @click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
    def command(spec, results, key, gpus, gpu_index, model, output, overwrite, runner, dry_run, overrides):
        from tao_launcher.launcher.submit import submit

        sys.exit(submit(task, subtask, schema, spec=spec, results=results, key=key, gpus=gpus, model=model,
                        output=output, overwrite=overwrite, runner=runner, overrides=list(overrides),
                        gpu_index=gpu_index, dry_run=dry_run))

    return command


@click.group(cls=TaoGroup, context_settings={"help_option_names": ["-h", "--help"]},
             help="tao: train, fine-tune and export conversational-AI models with no code.\n\n"
                  "\b\nUsage: tao TASK SUBTASK [-e SPEC] [-r RESULTS] [-k KEY] [-g GPUS] [-m MODEL] [-o DIR] [key=value ...]\n"
                  "Example: tao text_classification train -r ~/tao/results/tc model.dataset.num_classes=2 "
                  "training_ds.file_path=~/tao/data/sst2/train.tsv validation_ds.file_path=~/tao/data/sst2/dev.tsv")
@click.version_option(__version__, prog_name="tao")
def main():
    pass


@main.command(help="show the version, the runner that would be used and the mounts")
@click.option("--runner", type=click.Choice(list(RUNNERS)), help=RUNNER_HELP)
def info(runner):
    from tao_launcher.launcher.images import config_file_path, image_for
    from tao_launcher.launcher.mounts import load_mounts, mounts_file_path

    mounts = load_mounts()
    images = {name: image_for(task) for name, task in TASKS.items()}
    click.echo(f"tao version: {__version__}")
    click.echo(f"python: {sys.executable}")
    click.echo(f"runner: {runner_line(runner, mounts, next(iter(images.values()), None))}")
    click.echo(f"images (config file {config_file_path()}):")
    for name, image in images.items():
        click.echo(f"  {name}: {image}")
    click.echo(f"mounts file: {mounts.path or str(mounts_file_path()) + ' (not found)'}"
               f" (used by the Docker runner only; the local runner takes host paths as given)")
    for m in mounts.mounts:
        click.echo(f"  {m.source} -> {m.destination}" + (" (read-only)" if m.read_only else "")
                   + (f" (source '{m.relative}' is relative: read from the mounts file's folder)" if m.relative else ""))
    for variable in mounts.envs:
        click.echo(f"  env {variable}")
    if mounts.docker_options:
        click.echo(f"docker options: {mounts.docker_options}")


def runner_line(runner, mounts, image) -> str:
    """The runner a subtask would get and why; for a runner that was asked for, whether it can run."""
    from tao_launcher.launcher.runners import select_runner

    chosen = select_runner(runner, mounts, image)
    problem = chosen.why_not(mounts, image) if chosen.reason.startswith("chosen") else None
    return chosen.describe() + (f"; but it cannot run here: {problem}" if problem else "")


ALL_USERS_HELP = "also other users' Docker jobs (by default only yours: those started under your UID)"


def docker_client(timeout: float):
    """The engine, or None after a note when none answers: local jobs are shown and stopped anyway."""
    from tao_launcher.launcher.docker_runner import connect

    try:
        return connect(timeout)
    except UsageError as err:
        click.echo(f"tao: note: Docker jobs are not shown: {err}", err=True)
        return None


@main.command(name="list", help="list your jobs (Docker containers and local runs): running, or dead "
                                "(killed without finishing)")
@click.option("--all-users", is_flag=True, help=ALL_USERS_HELP)
def list_command(all_users):
    from tao_launcher.launcher.docker_runner import list_jobs
    from tao_launcher.launcher.jobs import list_local_jobs

    client = docker_client(timeout=10)
    jobs = (list_jobs(client, all_users) if client else []) + list_local_jobs()
    uid = str(os.getuid())
    rows = [("ID", "UID", "TASK", "SUBTASK", "STARTED (UTC)", "STATUS", "RESULTS")]
    rows += [(j.id, getattr(j, "uid", uid), j.task, j.subtask, j.started, j.status, j.results)
             for j in sorted(jobs, key=lambda j: j.started)]
    if not all_users:
        rows = [row[:1] + row[2:] for row in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


@main.command(help="stop your jobs by ID (from 'tao list') or all of them: a container is stopped and removed, "
                   "a local run is interrupted, a dead job is forgotten")
@click.argument("ids", nargs=-1)
@click.option("--all", "stop_all", is_flag=True, help="stop every job of yours (with --all-users: everyone's)")
@click.option("--all-users", is_flag=True, help=ALL_USERS_HELP)
@click.option("--grace", default=10, show_default=True, help="seconds a job gets to stop before it is killed")
def stop(ids, stop_all, all_users, grace):
    from tao_launcher.launcher.docker_runner import connect, stop_jobs
    from tao_launcher.launcher.jobs import PREFIX, list_local_jobs, stop_local_job

    if bool(ids) == stop_all:
        raise UsageError("name the jobs to stop (tao stop ID ...; 'tao list' shows them) or pass --all, not both")
    local = list_local_jobs()
    wanted_local = [i for i in ids if i.startswith(PREFIX)]
    chosen_local = local if stop_all else []
    for wanted in wanted_local:
        match = [j for j in local if j.id == wanted]
        if not match:
            raise UsageError(f"no local tao job {wanted!r}: 'tao list' shows your jobs "
                             f"(local: {', '.join(j.id for j in local) or 'none'})")
        chosen_local += match
    docker_ids = [i for i in ids if not i.startswith(PREFIX)]
    stopped = []
    if docker_ids:
        stopped = stop_jobs(connect(timeout=grace + 30), docker_ids, False, grace, all_users)
    elif stop_all:
        client = docker_client(timeout=grace + 30)
        stopped = stop_jobs(client, [], True, grace, all_users) if client else []
    for job in stopped:
        click.echo(f"stopped {job.id} ({job.task} {job.subtask}, results in {job.results})")
    for job in chosen_local:
        stop_local_job(job)
        verb = "stopped" if job.status == "running" else "forgot dead job"
        click.echo(f"{verb} {job.id} ({job.task} {job.subtask}, results in {job.results})")
    if not stopped and not chosen_local:
        click.echo("no tao jobs to stop")


@main.command(help="serve exported models (export_format=TRITON) with a Triton Inference Server until Ctrl-C",
              context_settings={"max_content_width": 120})
@click.option("-m", "--model", "repositories", multiple=True, required=True, metavar="REPO",
              help="a Triton model repository that export wrote (exported-model-triton/); repeat for more")
@click.option("-k", "--key", "key", help="the models' encryption key (or set TAO_KEY; it is never printed)")
@click.option("-r", "--results-dir", "results", help="optional folder for status.json and the server's log.txt")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--http-port", default=8000, show_default=True, type=click.IntRange(1, 65535),
              help="KServe v2 HTTP port")
@click.option("--grpc-port", default=8001, show_default=True, type=click.IntRange(1, 65535),
              help="KServe v2 gRPC port")
@click.option("--riva-port", default=None, type=click.IntRange(1, 65535),
              help="also answer Riva's gRPC API (ClassifyText, AnalyzeIntent, Recognize, ...) on this port")
@click.option("--runner", type=click.Choice(["local", "docker"]), default="local", show_default=True,
              help="local: the Triton server of the serving environment (make serve-env); docker: NVIDIA's "
                   "Triton container")
@click.option("--image", default=None, help="the Triton image of the docker runner")
@click.option("--ready-timeout", default=300, show_default=True, type=click.IntRange(1, 3600),
              help="seconds the server may take to load every model")
@click.option("--dry-run", is_flag=True, help="print the server's command line and run nothing")
def serve(repositories, key, results, host, http_port, grpc_port, riva_port, runner, image, ready_timeout, dry_run):
    from pathlib import Path

    from tao_launcher.launcher.runners import KEY_ENV, KEY_FILE_ENV
    from tao_launcher.serving.server import DOCKER_IMAGE, Ports, serve as start

    key = key or os.environ.get(KEY_ENV) or None
    if not key and os.environ.get(KEY_FILE_ENV):
        key = Path(os.environ[KEY_FILE_ENV]).read_text(encoding="utf-8").splitlines()[0].strip() or None
    sys.exit(start([Path(r) for r in repositories], ports=Ports(host, http_port, grpc_port, riva_port), runner=runner, key=key,
                   results=Path(results) if results else None, dry_run=dry_run, image=image or DOCKER_IMAGE,
                   ready_timeout=ready_timeout))


def run() -> None:
    """Console-script entry: map TaoError and Ctrl-C to their exit codes; anything else is a bug, said in
    one sentence that names the file holding its traceback (``errors.crash_report``)."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:   # click's wrapping of a Ctrl-C that came before a runner took signals over
        click.echo("tao: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except TaoError as err:
        click.echo(f"tao: error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("tao: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as err:  # noqa: BLE001 - the guard: one sentence, the traceback in a file
        from tao_launcher.errors import EXIT_FAILED, crash_report, disk_problem

        problem = disk_problem(err) if isinstance(err, OSError) else None
        click.echo(f"tao: error: {problem or crash_report('the tao launcher')}", err=True)
        sys.exit(EXIT_FAILED)
