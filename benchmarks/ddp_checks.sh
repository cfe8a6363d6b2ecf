#!/bin/bash
# torchrun checks on the real station years (configs/station_years.toml), from the repository root:
#   RNNKIT_DATA_DIR=../shared/data benchmarks/ddp_checks.sh [WORKDIR]
# 1. one process against 2 gloo ranks, one epoch, same global batch: max |weight difference| and metrics.json;
# 2. kill -9 of rank 1 in the middle of epoch 3 of 6, then --resume on 2 ranks and on 1 process, against an
#    uninterrupted 2-rank run.
set -u
W=${1:-$(mktemp -d)}; mkdir -p "$W"
PY=${PY:-python}; TR=${TORCHRUN:-torchrun}
CFG=configs/station_years.toml
$PY examples/station_years_parquet.py "$W/station_years.parquet"
D="--data $W/station_years.parquet --quiet"
OMP_NUM_THREADS=1 $PY -m rnnkit train $CFG $D --epochs 1 --output "$W/one" > "$W/one.log" 2>&1; echo "1 process rc=$?"
$TR --standalone --nproc-per-node 2 -m rnnkit train $CFG $D --epochs 1 --output "$W/two" > "$W/two.log" 2>&1; echo "2 ranks rc=$?"
$TR --standalone --nproc-per-node 2 -m rnnkit train $CFG $D --epochs 6 --output "$W/ref" > "$W/ref.log" 2>&1; echo "uninterrupted rc=$?"
$TR --standalone --nproc-per-node 2 -m rnnkit train $CFG $D --epochs 6 --output "$W/cut" > "$W/cut.log" 2>&1 &
AGENT=$!
CK="$W/cut/models/gru_32/checkpoint/checkpoint.safetensors"
epoch() {  # the epoch of the checkpoint (its safetensors header), 0 while there is none
  $PY -c "import json,struct,sys
try:
    f=open(sys.argv[1],'rb'); n=struct.unpack('<Q',f.read(8))[0]
    print(json.loads(json.loads(f.read(n))['__metadata__']['rnnkit_checkpoint'])['epoch'])
except Exception: print(0)" "$CK"; }
while [ "$(epoch)" -lt 2 ]; do sleep 0.2; done
sleep 1.0
for p in $(pgrep -P $AGENT); do
  if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx RANK=1; then RANK1=$p; fi
done
echo "kill -9 rank 1 (pid $RANK1) with the checkpoint of epoch $(epoch)"
kill -9 "$RANK1"
wait $AGENT; echo "interrupted torchrun rc=$?; checkpoint left: epoch $(epoch)"
cp -a "$W/cut" "$W/cut1"
$TR --standalone --nproc-per-node 2 -m rnnkit train --resume "$W/cut" --epochs 6 --quiet > "$W/resume2.log" 2>&1
echo "resume on 2 ranks rc=$?"
OMP_NUM_THREADS=1 $PY -m rnnkit train --resume "$W/cut1" --epochs 6 --quiet > "$W/resume1.log" 2>&1
echo "resume on 1 process rc=$?"
$PY - "$W" <<'PYEOF'
import json, sys
from rnnkit.io import read_safetensors
W = sys.argv[1]
def weights(run): return read_safetensors(f"{W}/{run}/models/gru_32/model.safetensors")[0]
def diff(a, b): return max(float((a[k] - b[k]).abs().max()) for k in a)
def scores(run): return json.load(open(f"{W}/{run}/metrics.json"))["models"]["GRU(32)"]
print(f"1 epoch, 1 process vs 2 ranks: max |w1 - w2| = {diff(weights('one'), weights('two')):.3g}")
for key in ("mae_val", "mae_test", "rmse_test"):
    print(f"  {key}: {scores('one')[key]!r} vs {scores('two')[key]!r}")
rest = [{k: v for k, v in json.load(open(f"{W}/{r}/metrics.json")).items() if k != "models"} for r in ("one", "two")]
print("  metrics.json besides the model's scores and seconds identical:", rest[0] == rest[1],
      "; persistence identical:", json.load(open(f"{W}/one/metrics.json"))["models"]["persistence"]
      == json.load(open(f"{W}/two/metrics.json"))["models"]["persistence"])
for run, what in (("cut", "resumed on 2 ranks"), ("cut1", "resumed on 1 process")):
    h0 = json.load(open(f"{W}/ref/models/gru_32/result.json"))["history"]
    h1 = json.load(open(f"{W}/{run}/models/gru_32/result.json"))["history"]
    print(f"{what} vs uninterrupted: max |w| diff {diff(weights('ref'), weights(run)):.3g}, epochs {len(h1)}/{len(h0)}, "
          f"max |val_loss diff| {max(abs(a['val_loss'] - b['val_loss']) for a, b in zip(h0, h1)):.3g}, "
          f"mae_test {scores(run)['mae_test']!r} vs {scores('ref')['mae_test']!r}")
PYEOF
