"""``make reproduce``: the DVC pipeline, with its independent train stages run side by side.

``dvc repro`` runs one stage at a time. On a CPU a training process on one thread is
nearly as fast as on two (measured on a 2-core AMD EPYC: 263 vs 272 images/s), so two
train stages at once, one thread each, nearly halve the time. This runs ``dvc repro`` up
to the train stages, then each stale train stage's own command from ``dvc.yaml``
(``--jobs`` at a time; its outputs removed first, as ``dvc repro`` does), records each
finished one with ``dvc commit`` (what DVC documents for a command run by hand), and
finally ``dvc repro`` for the rest. The results are the same as ``dvc repro``'s: each
command is the stage's, and its thread count is fixed by the profile.

Targets, as ``dvc repro``'s, restrict it to what they need: ``python -m ppdnn.reproduce
tables`` trains and tabulates, without the security and notebook stages (the budget study,
README "Claims").
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TRAIN = "train@"


class UnknownStage(ValueError):
    """A target that dvc.yaml does not define."""


def _dvc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], check=True)


def needed(graph, targets) -> set:
    """The stages ``targets`` (addressings) need, themselves included; all for no targets.
    DVC's graph points from a stage to the stages it depends on."""
    import networkx as nx

    if not targets:
        return set(graph.nodes)
    out = set()
    for target in targets:  # a stage, or a foreach/matrix group ("train": every train@...)
        stages = [s for s in graph.nodes if s.addressing == target or s.addressing.startswith(f"{target}@")]
        if not stages:
            raise UnknownStage(f"unknown stage {target!r}: dvc.yaml has no such stage")
        out |= {d for s in stages for d in {s, *nx.descendants(graph, s)}}
    return out


def stale_train_stages(repo, targets=()) -> list:
    """The train stages ``targets`` need whose command, dependencies or outputs changed since
    dvc.lock, seed by seed (``train@run<i>-<seed>``), so that an interrupted pass has whole
    seeds done."""
    wanted = needed(repo.index.graph, targets)
    stages = [s for s in repo.index.stages if s.addressing.startswith(TRAIN) and s in wanted]
    stages.sort(key=lambda s: int(s.addressing.rsplit("-", 1)[1]))
    return [s for s in stages if repo.status(targets=[s.addressing])]


def _run(stage, commit_lock: threading.Lock) -> None:
    for out in stage.outs:  # what dvc repro does before a stage's command
        path = Path(out.fs_path)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    print(f"running {stage.addressing}: {stage.desc or ''}", flush=True)
    subprocess.run(stage.cmd, shell=True, check=True)
    with commit_lock:  # one DVC command at a time holds the repository's lock
        _dvc("commit", "--force", "--quiet", stage.addressing)


def reproduce(jobs: int = 2, targets=()) -> None:
    from dvc.repo import Repo

    with Repo(".") as repo:
        wanted = needed(repo.index.graph, targets)
        upstream = sorted({d.addressing for s in repo.index.stages if s.addressing.startswith(TRAIN)
                           and s in wanted for d in repo.index.graph.successors(s)})
    if upstream:
        _dvc("repro", *upstream)
    with Repo(".") as repo:
        stale = stale_train_stages(repo, targets)
    print(f"{len(stale)} train stages to run, {jobs} at a time", flush=True)
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(_run, stage, lock) for stage in stale]:
            future.result()  # the first failure stops here (the others finish first)
    _dvc("repro", *targets)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="train stages at a time (default 2)")
    parser.add_argument("targets", nargs="*", help="stages to reproduce, with what they need (default: all)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive int, got {args.jobs}")
    try:
        reproduce(args.jobs, args.targets)
    except UnknownStage as exc:
        print(f"ppdnn.reproduce: error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"ppdnn.reproduce: error: {exc.cmd if isinstance(exc.cmd, str) else ' '.join(exc.cmd)} "
              f"exited with {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
