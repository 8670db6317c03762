#!/usr/bin/env bash
# Tables 2 and 3, fast profile, on one lent GPU (H100/H200), in one device call.
#
# Here, once, from the checkout's root (.device-data/ is git-ignored; the archive is 19.4 MB):
#   mkdir -p .device-data && cp ../shared/data/cifar10-jpeg.tar.gz .device-data/
# Then ONE call of the device tool, and give_back right after it:
#   run(command="bash benchmarks/gpu_tables.sh", carry=[".device-data"], timeout_s=600)
# A machine's start takes a minute or two of the 15 minutes of device time, so a full call
# leaves no room for a second one. Where a rerun must fit, halve the budget (epochs are
# cut to fit it): command="BUDGET_S=240 bash benchmarks/gpu_tables.sh", timeout_s=400.
# timeout_s must exceed BUDGET_S + 90 (where `timeout` stops onepass) + packing.
#
# On the machine: the CUDA cipher tests (pytest, or if that is missing or fails a direct
# check of the 6 configurations), then `python -m ppdnn.onepass` (data, throughput probe,
# encryption, the 11 runs with seed 0, tables and claims; it plans its epochs to end within
# BUDGET_S, default 450 s, so that the whole command stays under 8 minutes,
# and `timeout` stops it BUDGET_S + 90 s after this script started, whatever happens), then
# packing. What comes back under $OUT (6 files, well under 8 x 16 MiB):
#   results-fast.tar.gz   the results/fast/ layout: `mkdir -p results && tar xzf results-fast.tar.gz -C results`
#                         gives results/fast/{runs/*/..., table2/3 and claims .csv|md, tables.png, curves.html, onepass.*}
#   onepass.json, onepass.log, table2.md, table3.md   copies, to read at once
#   device.log            GPU, torch and the cipher tests' output
set -u
export PYTHONUNBUFFERED=1 PPDNN_DEBUG=1   # unbuffered output; tracebacks, not one-line errors
OUT=${OUT:?run this on the device machine, where \$OUT is set}
PY=${PYTHON:-python3}
P=${PROFILE:-fast}   # PROFILE, ARCHIVE, EXTRA (more onepass options): for a dry run on a CPU
R=$OUT/$P
B=/dev/shm/ppdnn-onepass-$P   # checkpoints in memory: no disk writes in the timed epochs
mkdir -p "$B" 2>/dev/null && touch "$B/.w" 2>/dev/null || B=build/onepass/$P
{
  nvidia-smi -L
  $PY -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
  echo "== CUDA cipher path"
  timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_ciphers.py -k gpu -rs ||
  timeout 120 $PY - <<'EOF'
import numpy as np, torch
from ppdnn import ciphers
x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
for scheme, shuffle in [("plain", 0), ("pixel", 0), ("pixel", 1), ("tanaka", 0), ("etc", 0), ("chaotic_rc4", 0)]:
    c = ciphers.make(scheme, shuffle=bool(shuffle), seed=0)
    t = torch.from_numpy(x).permute(0, 3, 1, 2).cuda()
    y = c.encrypt(t)
    assert y.is_cuda and (y.permute(0, 2, 3, 1).cpu().numpy() == c.encrypt(x)).all(), scheme
    assert torch.equal(c.decrypt(y), t), scheme
print("fallback check: CUDA cipher path matches numpy for 6 configurations")
EOF
} 2>&1 | tee "$OUT/device.log"
timeout $((${BUDGET_S:-450} + 90 - SECONDS)) $PY -m ppdnn.onepass --profile "$P" --out "$R" \
  --archive "${ARCHIVE:-.device-data/cifar10-jpeg.tar.gz}" --build "$B" --seeds 0 --budget-s "${BUDGET_S:-450}" ${EXTRA:-}
rc=$?
echo "ppdnn.onepass exit $rc after ${SECONDS}s" | tee -a "$OUT/device.log"
for f in onepass.json onepass.log table2.md table3.md; do cp "$R/$f" "$OUT/" 2>/dev/null; done
tar -C "$OUT" -czf "$OUT/results-$P.tar.gz" "$P" && rm -rf "$R"
ls -l "$OUT"
exit "$rc"
