"""Benchmark the ciphertext-only attacks (both advanced methods) on 10,000 32x32 images.

    .venv/bin/python benchmarks/bench_attacks.py [--data-dir data/cifar10] [-n 10000]

Uses the CIFAR-10 test images from the data cache when it exists, random images
otherwise (the attacks' cost does not depend on the content).
Target on a 2-core machine: advanced attack on 10,000 images <= 60 s.
"""
import argparse
import os
import time
from pathlib import Path

import numpy as np

from ppdnn import attacks, ciphers

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data-dir", default="data/cifar10")
parser.add_argument("-n", type=int, default=10_000)
args = parser.parse_args()

if (Path(args.data_dir) / "manifest.json").is_file():
    from ppdnn import data
    images, source = data.load(args.data_dir)["test_images"][:args.n], "CIFAR-10 test images"
else:
    images = np.random.default_rng(0).integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    source = "random images (no data cache)"
prior = attacks.colour_prior(images[:1000])
print(f"cores: {os.cpu_count()}; {len(images)} {source}")
for shuffle in (False, True):
    encrypted = ciphers.make("pixel", shuffle=shuffle, seed=0).encrypt(images)
    steps = "2+3" if shuffle else "2"
    runs = [("fold", lambda: attacks.fold(encrypted))]
    for method in attacks.ADVANCED_METHODS:
        runs += [(f"advanced, {method}", lambda m=method: attacks.advanced_attack(encrypted, shuffle, method=m)),
                 (f"advanced, {method} + prior",
                  lambda m=method: attacks.advanced_attack(encrypted, shuffle, prior=prior, method=m))]
    for name, run in runs:
        t0 = time.perf_counter()
        run()
        print(f"pixel (step {steps:3s}) {name:34s} {time.perf_counter() - t0:6.2f} s")
