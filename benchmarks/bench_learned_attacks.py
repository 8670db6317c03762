"""Benchmark the learned attacks' training speed: images/s of GAN-Attack and ITN-Attack
for the 1x1 generator (pixel scheme) and the block generator (Tanaka's), and what the
literature's configuration would cost at that speed.

    .venv/bin/python benchmarks/bench_learned_attacks.py [--threads 1] [-n 1024]

Uses crops of scikit-image's photographs (the cost does not depend on content).
"""
import argparse
import os

import numpy as np
import torch

from ppdnn import ciphers, learned_attacks as la
from ppdnn.dataset_attacks import public_images

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("-n", type=int, default=1024, help="images per timed epoch")
args = parser.parse_args()
torch.set_num_threads(args.threads)

photos = public_images(size=32, per_photo=64)
images = np.resize(photos, (2 * args.n, *photos.shape[1:]))
print(f"cores: {os.cpu_count()}, threads: {args.threads}, torch {torch.__version__}")
for name in ("pixel", "tanaka"):
    configuration = ciphers.configuration(name)
    cipher = ciphers.make_for_configuration(configuration, 0)
    encrypted = cipher.encrypt(images[:args.n])
    la.train_gan(encrypted[:64], images[-64:], la.block_size(configuration), 1)  # warm-up
    _, gan = la.train_gan(encrypted, images[args.n:], la.block_size(configuration), 1)
    _, itn = la.train_itn(images[:args.n], configuration, 1)
    for attack, facts, epochs in (("GAN", gan, la.GAN_EPOCHS), ("ITN", itn, la.ITN_EPOCHS)):
        rate = facts["images_seen"] / facts["seconds"]
        full_h = epochs * la.LITERATURE_TRAIN_IMAGES / rate / 3600
        print(f"{name:7s} {attack}  {rate:7.1f} images/s   literature's {epochs} epochs of "
              f"{la.LITERATURE_TRAIN_IMAGES:,} images: {full_h:5.1f} h", flush=True)
