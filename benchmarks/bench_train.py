"""Training throughput: CPU at widths 16 and 64 (a few batches), and the fast recipe on CUDA.

    .venv/bin/python benchmarks/bench_train.py [--cpu-batches 4] [--skip-cpu]

CPU: paper recipe (batch 128, fp32), cloud augmentation, synthetic 32x32 images; the first
pass is warm-up, the second is reported. CUDA (when available): fast recipe (batch 512,
bf16, channels_last, torch.compile) at width 64 on 50,000 synthetic images; epoch 1
includes compilation, later epochs are the steady state (target: <= 2 s per epoch on an H100).
"""
import argparse

import torch

from ppdnn import train


def report(label, rows):
    steady = rows[1:] or rows
    ips = sum(r["images_per_s"] for r in steady) / len(steady)
    sec = sum(r["seconds"] for r in steady) / len(steady)
    print(f"{label:<48} {ips:>10.0f} img/s  {sec:>8.2f} s/pass  "
          f"(first pass {rows[0]['seconds']:.2f} s)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-batches", type=int, default=4)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--gpu-epochs", type=int, default=4)
    args = parser.parse_args()
    if not args.skip_cpu:
        print(f"CPU: {torch.get_num_threads()} threads, torch {torch.__version__}")
        for width in (16, 64):
            config = train.TrainConfig.from_recipe("paper", width=width, device="cpu")
            rows = train.measure_speed(config, n_images=args.cpu_batches * config.batch_size, epochs=2)
            report(f"cpu paper width {width} batch {config.batch_size}", rows)
    if torch.cuda.is_available():
        print(f"CUDA: {torch.cuda.get_device_name()}")
        for adaptation in ("none", "pixel"):
            config = train.TrainConfig.from_recipe("fast", width=64, adaptation=adaptation, device="cuda")
            rows = train.measure_speed(config, n_images=50_000, epochs=args.gpu_epochs)
            report(f"cuda fast width 64 {adaptation} (50k images/epoch)", rows)
    else:
        print("CUDA not available: GPU figures skipped")


if __name__ == "__main__":
    main()
