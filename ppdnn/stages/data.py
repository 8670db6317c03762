"""The data stage: CIFAR-10 from the JPEG archive or torchvision into the uint8 cache."""
from __future__ import annotations

import argparse
import json
import sys

from .. import data, errors, plan
from ..files import check_writable


def prepare(out: str, source: str = "auto", archive: str | None = None, root: str = "data/raw") -> dict:
    """Build the cache in ``out``; returns its manifest (without the per-split details)."""
    check_writable(out)
    manifest = data.prepare(source=source, archive=archive, root=root, cache_dir=out)
    return {k: v for k, v in manifest.items() if k != "splits"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppdnn.stages.data", description=__doc__)
    parser.add_argument("--params", default=plan.PARAMS, help="reads its data: slice")
    parser.add_argument("--out", required=True)
    parser.add_argument("--root", default="data/raw", help="where torchvision keeps its download")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def stage():
        settings = plan.read(args.params).get("data")
        if not isinstance(settings, dict) or set(settings) != {"source", "archive"}:
            raise plan.ParamsError(f"{args.params}: data needs exactly source and archive, got {settings!r}")
        print(json.dumps(prepare(args.out, settings["source"], settings["archive"], args.root), indent=2))

    return errors.run_main("ppdnn.stages.data", stage, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
