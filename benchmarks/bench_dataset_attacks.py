"""Benchmark the ciphertext-only data-set attacks on N encrypted 32x32 images per scheme.

    .venv/bin/python benchmarks/bench_dataset_attacks.py [--data-dir data/cifar10] [-n 50000]

Uses the CIFAR-10 training images from the data cache when it exists, crops of
scikit-image's photographs tiled to N otherwise (the cost does not depend on content).
Target on a 2-core machine: each attack on 50,000 images within a minute.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np
import yaml

from ppdnn import ciphers, dataset_attacks, security

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", default="data/cifar10")
parser.add_argument("-n", type=int, default=50_000)
args = parser.parse_args()

if (Path(args.data_dir) / "manifest.json").is_file():
    images = np.load(Path(args.data_dir) / "train.npz")["images"][:args.n]
    source = "CIFAR-10 training images"
else:
    photos = dataset_attacks.public_images()
    images, source = np.resize(photos, (args.n, *photos.shape[1:])), "tiled scikit-image crops"
print(f"cores: {os.cpu_count()}; {len(images)} {source}")
entries = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["ciphers"]
for configuration in security.attacked_configurations(images.shape[1:3], ciphers.configurations(entries)):
    name, cipher = configuration.name, ciphers.make_for_configuration(configuration, 0)
    encrypted = cipher.encrypt(images)
    t0 = time.perf_counter()
    result = dataset_attacks.attack_dataset(encrypted, cipher.scheme, cipher.options)
    print(f"{name:14s} {result.method:48s} {time.perf_counter() - t0:6.2f} s "
          f"(confident: {result.confident})", flush=True)
