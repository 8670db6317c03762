"""The cipher configurations the project ships: the ``ciphers:`` entries of params.yaml."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = yaml.safe_load((ROOT / "params.yaml").read_text())["ciphers"]
