"""Encrypt/decrypt throughput of every scheme on a CIFAR-10-sized training set (CPU).

Prints seconds and MB/s per scheme for 50,000 x 32 x 32 x 3 uint8 images, and the
speed-up over a straightforward per-pixel Python loop (timed on a small subset and
extrapolated). Target: pixel with shuffle <= 0.3 s for the 50k images, >= 100x the loop.

    .venv/bin/python benchmarks/bench_ciphers.py [--images 50000] [--loop-images 20]
"""
import argparse
import time

import numpy as np
import torch

from ppdnn import ciphers
from ppdnn.ciphers import PERMUTATIONS


def pixel_loop(cipher, images):
    """The paper's steps 2 and 3 written pixel by pixel (the reference to beat)."""
    out = np.empty_like(images)
    for n in range(images.shape[0]):
        for h in range(images.shape[1]):
            for w in range(images.shape[2]):
                pixel = [int(v) ^ 255 if cipher.flip[h, w, c] else int(v)
                         for c, v in enumerate(images[n, h, w])]
                if cipher.perm is not None:
                    pixel = [pixel[s] for s in PERMUTATIONS[cipher.perm[h, w]]]
                out[n, h, w] = pixel
    return out


def table_loop(cipher, images):
    """Any scheme as a per-value loop over its position/XOR table (bytes or 4-bit values)."""
    table = cipher.table("encrypt")
    out = np.empty_like(images)
    n_bytes = images[0].size
    for n in range(images.shape[0]):
        flat = images[n].ravel().tolist()
        units = [v & 15 for v in flat] + [v >> 4 for v in flat] if table.nibbles else flat
        index = range(len(units)) if table.index is None else table.index.tolist()
        mask = [0] * len(units) if table.mask is None else table.mask.tolist()
        result = [units[i] ^ m for i, m in zip(index, mask)]
        if table.nibbles:
            result = [(hi << 4) | lo for lo, hi in zip(result[:n_bytes], result[n_bytes:])]
        out[n] = np.array(result, dtype=np.uint8).reshape(images.shape[1:])
    return out


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--loop-images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    images = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    subset = images[:args.loop_images]
    megabytes = images.nbytes / 1e6
    print(f"{args.images} images of 32x32x3 uint8 ({megabytes:.1f} MB), numpy on CPU, "
          f"torch threads {torch.get_num_threads()}; best of {args.repeats}")
    print(f"{'scheme':18s} {'enc s':>7s} {'enc MB/s':>9s} {'dec s':>7s} {'dec MB/s':>9s} "
          f"{'loop s (extrap.)':>17s} {'speed-up':>9s}  loop reference")
    schemes = ciphers.make_all(key_seed=0)
    if not any(c.scheme == "pixel" and c.perm is not None for c in schemes):
        # step 2+3 is a configuration of params.yaml, not a default one: benchmark it too
        schemes.append(ciphers.make("pixel", shuffle=True, seed=0))
    for cipher in schemes:
        cipher.encrypt(subset), cipher.decrypt(subset)  # builds the tables once
        enc_s, encrypted = best_time(lambda: cipher.encrypt(images), args.repeats)
        dec_s, decrypted = best_time(lambda: cipher.decrypt(encrypted), args.repeats)
        assert (decrypted == images).all()
        reference = pixel_loop if isinstance(cipher, ciphers.PixelCipher) else table_loop
        loop_s, looped = best_time(lambda: reference(cipher, subset), 1)
        assert (looped == encrypted[:args.loop_images]).all()
        loop_s *= args.images / args.loop_images
        print(f"{cipher.label:18s} {enc_s:7.3f} {megabytes / enc_s:9.0f} {dec_s:7.3f} "
              f"{megabytes / dec_s:9.0f} {loop_s:17.1f} {loop_s / enc_s:8.0f}x  {reference.__name__}")

    cipher = ciphers.make("pixel", shuffle=True, seed=0)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    enc_s, _ = best_time(lambda: cipher.encrypt(tensor), args.repeats)
    print(f"torch (N, 3, H, W) CPU tensor, pixel (step 2+3): encrypt {enc_s:.3f} s "
          f"({megabytes / enc_s:.0f} MB/s)")
    if torch.cuda.is_available():
        gpu = tensor.cuda()
        cipher.encrypt(gpu)
        torch.cuda.synchronize()

        def on_gpu():
            out = cipher.encrypt(gpu)
            torch.cuda.synchronize()
            return out
        enc_s, _ = best_time(on_gpu, args.repeats)
        print(f"torch CUDA tensor, pixel (step 2+3): encrypt {enc_s * 1e3:.1f} ms "
              f"({megabytes / enc_s:.0f} MB/s) on {torch.cuda.get_device_name()}")


if __name__ == "__main__":
    main()
