"""Benchmark the data stage: archive -> cache, and cache -> arrays.

    .venv/bin/python benchmarks/bench_data.py [--archive ../shared/data/cifar10-jpeg.tar.gz]

Targets on a 2-core machine: <= 15 s and <= 1 s.
"""
import argparse
import os
import tempfile
import time

from ppdnn import data

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--archive", default="../shared/data/cifar10-jpeg.tar.gz")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as cache:
    t0 = time.perf_counter()
    manifest = data.prepare(source="archive", archive=args.archive, cache_dir=cache)
    t1 = time.perf_counter()
    arrays = data.load(cache)
    t2 = time.perf_counter()
print(f"cores: {os.cpu_count()}")
print(f"archive -> cache: {t1 - t0:6.2f} s  ({manifest['splits']['train']['count']} + "
      f"{manifest['splits']['test']['count']} images)")
print(f"cache -> arrays:  {t2 - t1:6.2f} s  (train {arrays['train_images'].shape}, test {arrays['test_images'].shape})")
print(f"train mean {manifest['splits']['train']['mean']} std {manifest['splits']['train']['std']}")
