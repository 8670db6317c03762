#!/usr/bin/env bash
# Tables 2 and 3, fast profile, seeds 0 and 1, on one lent GPU (H100/H200), in one device call.
#
# Here, once, from the checkout's root (.device-data/ is git-ignored; the archive is 19.4 MB):
#   mkdir -p .device-data && cp ../shared/data/cifar10-jpeg.tar.gz .device-data/
# Then ONE call of the device tool, and give_back right after it:
#   run(command="bash benchmarks/gpu_tables.sh", carry=[".device-data"], timeout_s=600)
# A machine's start takes a minute or two of the 15 minutes of device time, so a full call
# leaves no room for a second one. Where a rerun must fit, halve the budget (epochs are
# cut to fit it): command="BUDGET_S=240 bash benchmarks/gpu_tables.sh", timeout_s=400.
# timeout_s must exceed BUDGET_S + 90 (where `timeout` stops onepass) + packing.
# Two seeds give a spread over seeds, but 22 runs of 15 epochs may not fit the budget:
# onepass then cuts epochs (never runs) and says so in onepass.json and onepass.log;
# SEEDS=0 trains 11 runs, more likely at the profile's full 15 epochs.
#
# On the machine: the CUDA cipher tests (pytest, or if that is missing or fails a direct
# check of the 6 configurations), then `python -m ppdnn.onepass` (data, throughput probe,
# the encrypt stage per cipher configuration, the train stage for the 11 runs x SEEDS,
# the tables stage; it plans its epochs to end within BUDGET_S, default 450 s, so that the
# whole command stays under 8 minutes, and `timeout` stops it BUDGET_S + 90 s after this
# script started, whatever happens), then packing. What comes back under $OUT (6 files,
# well under 8 x 16 MiB):
#   results-fast.tar.gz   the results/fast/ layout: `mkdir -p results && tar xzf results-fast.tar.gz -C results`
#                         gives results/fast/{runs/<run>-s<seed>/{metrics.json,run.json,epochs.csv},
#                         table2/3 and claims .csv|md, tables.png, curves.png, curves.html, onepass.*}
#   onepass.json, onepass.log, table2.md, table3.md   copies, to read at once
#   device.log            GPU, torch and the cipher tests' output
#
# CPU smoke mode (no GPU, about a minute on 2 cores): SMOKE=1 makes a tiny random archive
# and a params file with one tiny CPU profile (those of tests/test_onepass.py) in $OUT/smoke
# and runs the same steps on them; the GPU lines of device.log then say "not available":
#   OUT=$(mktemp -d) SMOKE=1 PYTHON=.venv/bin/python bash benchmarks/gpu_tables.sh
# PROFILE, SEEDS, PARAMS, ARCHIVE, BUILD, BUDGET_S and EXTRA (more onepass options) override
# the defaults in either mode.
set -u
export PYTHONUNBUFFERED=1 PPDNN_DEBUG=1   # unbuffered output; tracebacks, not one-line errors
OUT=${OUT:?run this on the device machine, where \$OUT is set}
PY=${PYTHON:-python3}
if [ "${SMOKE:-0}" = 1 ]; then
  S=$OUT/smoke
  mkdir -p "$S"
  $PY -c 'import sys, pathlib, yaml; sys.path.insert(0, "tests"); import test_onepass as t
s = pathlib.Path(sys.argv[1]); t.make_archive(s / "tiny.tar.gz"); (s / "params.yaml").write_text(yaml.safe_dump(t.tiny_params()))' "$S" || exit 1
  : "${PROFILE:=tiny}" "${SEEDS:=0}" "${PARAMS:=$S/params.yaml}" "${ARCHIVE:=$S/tiny.tar.gz}" "${BUILD:=$S/build}"
  : "${BUDGET_S:=300}" "${EXTRA:=--any-counts --probe-seconds 0}"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # a busy small CPU: no OpenMP spin-waiting
fi
P=${PROFILE:-fast}
R=$OUT/$P
B=${BUILD:-/dev/shm/ppdnn-onepass-$P}   # data sets and checkpoints in memory: no disk writes in the timed epochs
mkdir -p "$B" 2>/dev/null && touch "$B/.w" 2>/dev/null || B=build/onepass/$P
{
  nvidia-smi -L
  $PY -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "not available")'
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
# SEEDS and EXTRA are split into words on purpose (several seeds, several options)
timeout $((${BUDGET_S:-450} + 90 - SECONDS)) $PY -m ppdnn.onepass --profile "$P" --out "$R" \
  --params "${PARAMS:-params.yaml}" --archive "${ARCHIVE:-.device-data/cifar10-jpeg.tar.gz}" --build "$B" \
  --seeds ${SEEDS:-0 1} --budget-s "${BUDGET_S:-450}" ${EXTRA:-}
rc=$?
echo "ppdnn.onepass exit $rc after ${SECONDS}s" | tee -a "$OUT/device.log"
for f in onepass.json onepass.log table2.md table3.md; do cp "$R/$f" "$OUT/" 2>/dev/null; done
tar -C "$OUT" -czf "$OUT/results-$P.tar.gz" "$P" && rm -rf "$R"
ls -l "$OUT"
exit "$rc"
