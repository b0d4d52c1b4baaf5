"""One run over the whole catalogue from a config file: every modality's extractor, then verify and report.

Each modality with a table in the config runs as a user would run it, in its own venv:
`<venvs>/<modality>/bin/python src/<its script> --config <output>/run_<timestamp>.toml`, the
resolved config written once into the output folder. Modalities run one after another, or
with --parallel in the waves of PARALLEL_WAVES. Their output is passed on with a
`[modality]` prefix; their progress lines are gathered into one line per modality and into
`progress.json` (rewritten atomically). Ctrl-C or SIGTERM is passed to every running child,
which stops cleanly and prints its summary; nothing further starts, and this process exits
130 or 143. Otherwise it exits 0 only if every extractor, verify and report ended 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from m3l import cli, config
from m3l.errors import UserError
from m3l.modalities import MODALITIES, inputs_by_flag
from m3l.progress import Figures, combined, parse
from m3l.store import runs
from m3l.store.files import OutputError
from m3l.store.layout import FeatureRoot, layout_kind
from m3l.store.writer import atomic_write_bytes

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
# --parallel runs the modalities of a wave together: the pairs that gained most when measured on a
# 2-core CPU; text with video, both bound by inference on the same cores, gained least (docs/config.md).
PARALLEL_WAVES = (("text", "image"), ("audio", "video"))


@dataclass
class Step:
    """One child process of the run: an extractor, verify or report."""

    name: str
    command: list[str]
    state: str = "pending"  # then running, finished, failed (exit status not 0), interrupted or not started
    code: int | None = None
    started: float = 0.0
    seconds: float = 0.0
    figures: dict[str, Figures] = field(default_factory=dict)  # the latest progress line of each model
    process: subprocess.Popen | None = None
    pumps: list[threading.Thread] = field(default_factory=list)

    def progress(self) -> Figures | None:
        return combined(self.name, self.figures.values()) if self.figures else None

    def report(self) -> dict[str, Any]:
        total = self.progress()
        return {"state": self.state, "exit": self.code, "seconds": round(self.seconds, 1),
                "progress": None if total is None else dataclasses.asdict(total),
                "models": {name: dataclasses.asdict(figures) for name, figures in self.figures.items()}}


class Run:
    """Starts the steps, passes their output on, gathers their progress, forwards signals."""

    def __init__(self, root: FeatureRoot, run_config: str, interval: float, skipped: dict[str, str]) -> None:
        self.root, self.run_config, self.interval, self.skipped = root, run_config, interval, skipped
        self.steps: dict[str, Step] = {}
        self.stopping: int | None = None  # the signal that stops the run
        self.lock = threading.Lock()  # the steps' figures, progress.json and our output lines
        self.progress_failed = False  # progress.json could not be written: said once

    def say(self, line: str, stream: IO[str] | None = None) -> None:
        with self.lock:
            print(line, file=stream or sys.stdout, flush=True)

    def stop(self, signum: int, frame: object) -> None:
        """Signal handler: pass the first Ctrl-C or SIGTERM on to every running child, once."""
        if self.stopping is not None:
            return
        self.stopping = signum
        for step in self.steps.values():
            if step.state == "running":
                _signal_group(step.process, signum)

    def run(self, waves: Iterable[Iterable[Step]]) -> None:
        """Each wave's steps at the same time, wave after wave; after a signal nothing more starts. Should
        this process fail, the running children are stopped and waited for, never left without a reader."""
        waves = [list(wave) for wave in waves]
        self.steps = {step.name: step for wave in waves for step in wave}  # all pending in progress.json
        try:
            for wave in waves:
                for step in wave:
                    if self.stopping is None:
                        self.start(step)
                    else:
                        step.state = "not started"
                self.wait([step for step in wave if step.state == "running"])
        except BaseException:
            self.stop(signal.SIGTERM, None)
            for step in self.steps.values():
                if step.state == "running":
                    step.process.wait()
            raise

    def start(self, step: Step) -> None:
        self.say(f"[{step.name}] {shlex.join(step.command)}")
        try:
            step.process = subprocess.Popen(step.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
                                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        except OSError as error:
            why = "not found (make setup creates the venvs)" if isinstance(error, FileNotFoundError) else \
                f"cannot be run: {error.strerror or error}"
            self.say(f"[{step.name}] error: {step.command[0]} {why}", sys.stderr)
            step.state, step.code = "failed", 2
            return
        step.state, step.started = "running", time.monotonic()
        step.pumps = [threading.Thread(target=self.pump, args=(step, stream, sink), daemon=True)
                      for stream, sink in ((step.process.stdout, sys.stdout), (step.process.stderr, sys.stderr))]
        for pump in step.pumps:
            pump.start()
        if self.stopping is not None:  # the signal came while it was starting
            _signal_group(step.process, self.stopping)
        self.write_progress()

    def pump(self, step: Step, stream: IO[str], sink: IO[str]) -> None:
        """A child's lines, passed on prefixed; its progress lines are gathered instead."""
        try:
            for line in stream:
                figures = parse(line)
                if figures is None:
                    self.say(f"[{step.name}] {line.rstrip()}", sink)
                    continue
                with self.lock:
                    step.figures[figures.model] = figures
                self.write_progress()
        finally:
            for _ in stream:  # read to the end whatever failed here: a child whose pipe fills up waits forever
                pass

    def wait(self, steps: list[Step]) -> None:
        """Until every step has ended, a progress line per running step every `interval` seconds."""
        next_report = time.monotonic() + self.interval
        while any(step.process.poll() is None for step in steps):
            time.sleep(0.1)
            if time.monotonic() >= next_report:
                next_report += self.interval
                for step in steps:
                    if step.process.poll() is None:
                        total = step.progress()
                        self.say(total.line() if total else f"progress: {step.name} started, no item done yet",
                                 sys.stderr)
        for step in steps:
            for pump in step.pumps:
                pump.join()
            step.code = step.process.wait()
            step.seconds = time.monotonic() - step.started
            stopped = self.stopping is not None and step.code in (128 + self.stopping, -self.stopping)
            step.state = "finished" if step.code == 0 else "interrupted" if stopped else "failed"
        self.write_progress()

    def write_progress(self) -> None:
        with self.lock:
            steps = {name: step.report() for name, step in self.steps.items()}
            skipped = {name: {"state": "skipped", "why": why} for name, why in self.skipped.items()}
            snapshot = {"updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "run_config": self.run_config, "steps": {**skipped, **steps}}
            try:
                atomic_write_bytes(self.root.progress, json.dumps(snapshot, indent=1).encode() + b"\n")
            except OutputError as error:  # only the figures are lost: the extractors write their own output
                if not self.progress_failed:
                    print(f"extract_all: warning: cannot write {error.path} ({error.reason}); the run goes on "
                          "without it", file=sys.stderr, flush=True)
                self.progress_failed = True

    def failed(self) -> list[str]:
        return [name for name, step in self.steps.items() if step.state != "finished"]


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    """The child and its loader workers, as a terminal's Ctrl-C or a scheduler's SIGTERM reaches them."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="TOML file: shared defaults at the top, a table per modality to run (docs/config.md)")
    parser.add_argument("--set", action="append", default=[], metavar="MODALITY.OPTION=VALUE",
                        help="override one config option (e.g. image.batch-size=16); repeatable")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    parser.add_argument("--parallel", action="store_true",
                        help=f"run modalities together: {' then '.join('+'.join(wave) for wave in PARALLEL_WAVES)}")
    parser.add_argument("--venvs", type=Path, default=REPO / ".venvs",
                        help="folder of the modality venvs, <venvs>/<modality>/bin/python (default: .venvs)")
    return parser


def resolve(args: argparse.Namespace) -> dict[str, tuple[argparse.ArgumentParser, argparse.Namespace]]:
    """Each modality with a table in the config file → its script's parser and resolved options (the whole
    config is checked, tables or not; `--set` changes options, it adds no table)."""
    tables = config.read(args.config)
    overrides = [part for override in args.set for part in ("--set", override)]
    parsed = {name: cli.parse_arguments(name, ["--config", str(args.config), *overrides]) for name in MODALITIES}
    return {name: parsed[name] for name in MODALITIES if isinstance(tables.get(name), dict)}


def single_output(sections: dict[str, tuple[argparse.ArgumentParser, argparse.Namespace]]) -> Path:
    outputs = {Path(os.path.abspath(args.output)) for _, args in sections.values()}
    if len(outputs) != 1:
        raise UserError("config: every modality must write to one output folder (set output once, at the top)"
                        if outputs else "config: no [text], [image], [audio] or [video] table: nothing to run")
    return cli.prepare_output(outputs.pop())


def single_layout(output: Path, sections: dict[str, tuple[argparse.ArgumentParser, argparse.Namespace]]) -> str:
    """The layout every modality writes the output folder in, for verify and report to read it in."""
    layouts = {layout_kind(output, args.layout) for _, args in sections.values()}
    if len(layouts) != 1:
        raise UserError("config: every modality must write in one layout (set layout once, at the top)")
    return layouts.pop()


def final_steps(python: Path, root: FeatureRoot,
                sections: dict[str, tuple[argparse.ArgumentParser, argparse.Namespace]]) -> list[Step]:
    """verify.py --accept-logged and report.py over the output folder in its layout, against the catalogues
    run whole: a catalogue option (--trailers feeds audio and video) is given only where every modality it
    feeds that ran read that one file without limit or ids; otherwise their folders are checked without
    catalogue ids."""
    catalogues = []
    for flag, fed in inputs_by_flag().items():
        ran = [args for modality, (_, args) in sections.items() if modality in fed]
        paths = {os.path.abspath(args.input) for args in ran}
        if len(paths) == 1 and not any(args.limit or args.ids for args in ran):
            catalogues += [flag, paths.pop()]
    common = ["--output", str(root), "--layout", root.kind, *catalogues]
    return [Step("verify", [str(python), str(SRC / "verify.py"), *common, "--accept-logged"]),
            Step("report", [str(python), str(SRC / "report.py"), *common])]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sections = resolve(args)
        if args.print_config:
            print(config.dumps({name: config.resolved(*parsed) for name, parsed in sections.items()}), end="")
            return 0
        output = single_output(sections)
        root = FeatureRoot(output, single_layout(output, sections))
        command = shlex.join([sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
        resolved = config.dumps({name: config.resolved(*parsed) for name, parsed in sections.items()})
        models = [name for _, parsed in sections.values() for name in parsed.models.split(",") if name]
        with runs.recorded(output, command, args.config, resolved, models) as record:
            code = run_all(args, sections, root, record["run_config"])
            record["outcome"] = {0: "finished", 130: "interrupted", 143: "interrupted"}.get(code, "failed")
        return code
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run_all(args: argparse.Namespace, sections: dict[str, tuple[argparse.ArgumentParser, argparse.Namespace]],
            root: FeatureRoot, run_config: str) -> int:
    skipped = {name: f"no [{name}] table in {args.config}" for name in MODALITIES if name not in sections}
    for name, why in skipped.items():
        print(f"[{name}] skipped: {why}", flush=True)
    steps = {name: Step(name, [str(args.venvs / name / "bin" / "python"), str(SRC / MODALITIES[name].script),
                               "--config", str(root.output / run_config)]) for name in sections}
    waves = [[steps[name] for name in wave if name in steps]
             for wave in (PARALLEL_WAVES if args.parallel else [[name] for name in MODALITIES])]
    interval = min(parsed.progress_every for _, parsed in sections.values())
    run = Run(root, run_config, interval, skipped)
    previous = {signum: signal.signal(signum, run.stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        run.run([*waves, *([step] for step in final_steps(args.venvs / next(iter(sections)) / "bin" / "python",
                                                           root, sections))])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    for name, step in run.steps.items():
        code = "" if step.code is None else f" (exit {step.code}, {step.seconds:.1f} s)"
        print(f"extract_all: {name} {step.state}{code}", flush=True)
    if run.stopping is not None:
        print("extract_all: interrupted: every file written so far is complete; run the same command again "
              "to resume", file=sys.stderr, flush=True)
        return 128 + run.stopping
    failed = run.failed()
    print(f"extract_all: {'OK' if not failed else 'problems in ' + ', '.join(failed)} (progress: "
          f"{run.root.progress})", flush=True)
    return 1 if failed else 0
