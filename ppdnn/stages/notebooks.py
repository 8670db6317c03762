"""The notebooks stage: the notebooks a reader opens, executed on this profile's results.

Each notebook is a thin view that calls a stage function and shows what it returns;
this executes them with papermill after the other stages, so the copies under
``results/<profile>/notebooks/`` (figures and tables inline, readable without running
anything) are made by the pipeline itself and cannot go stale. The views recompute into
``build/`` (never into ``results/``), except the security notebook, which shows the
security stage's report (recomputing it would take minutes), and the train notebook,
which trains one smoke-sized run on the real data as an example.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import plan
from ..errors import PpdnnError, one_line, run_main
from ..files import check_writable

CELL_TIMEOUT_S = 1800  # one cell; the train example takes about a minute on a 2-core CPU


def views(profile: str, results: Path, build: Path, params_file: str) -> dict[str, dict]:
    """{notebook: its parameters} for ``profile``."""
    return {
        "tables": {"profile": profile, "runs_dir": str(results / "runs"), "out_dir": str(build / "tables"),
                   "params_file": params_file},
        "security": {"params_file": params_file, "out_dir": str(results), "recompute": False},
        # a 128-pixel photo keeps the executed copy under 1 MB (results/figures has 256)
        "encryption_figures": {"params_file": params_file, "out_dir": str(build / "figures"), "photo_size": 128},
        "key_space": {"out_dir": str(build / "key_space")},
        "train": {"params_file": params_file, "profile": "smoke", "run": "step2_cloud", "seed": 0},
    }


def notebooks(profile: str, results_dir, out_dir, build_dir, params_file: str = plan.PARAMS) -> list[Path]:
    """Execute every view of ``views`` into ``out_dir``/<notebook>.ipynb; returns the paths."""
    import papermill

    check_writable(out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # papermill writes into an existing folder
    written = []
    for name, parameters in views(profile, Path(results_dir), Path(build_dir), params_file).items():
        target = Path(out_dir) / f"{name}.ipynb"
        try:
            papermill.execute_notebook(f"notebooks/{name}.ipynb", str(target), parameters=parameters,
                                       progress_bar=False, execution_timeout=CELL_TIMEOUT_S, cwd=None)
        except papermill.PapermillExecutionError as exc:
            raise PpdnnError(f"notebooks/{name}.ipynb failed in cell {exc.exec_count}: {exc.ename}: "
                             f"{one_line(RuntimeError(exc.evalue))} (executed copy: {target})") from None
        written.append(target)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=plan.PARAMS)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--results", required=True, help="the profile's results folder")
    parser.add_argument("--out", required=True, help="folder for the executed notebooks")
    parser.add_argument("--build", required=True, help="scratch folder of the views' own outputs")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    return run_main("ppdnn.stages.notebooks", lambda: print(*notebooks(
        args.profile, args.results, args.out, args.build, args.params), sep="\n"), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
