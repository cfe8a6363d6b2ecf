#!/bin/bash
# rnnkit sweep: median pruning against none on the same space and seed, both sweeps at once (so both see
# the same machine load), one worker each, 12 trials; from the repository root:
#   benchmarks/sweep_pruning.sh [WORKDIR]
# The space is configs/jena_sweep.toml's on a heavier setting (Chollet's 50/25/25 split, 48-hour windows,
# 10 epochs), on the embedded record. Prints each sweep's wall time, states, epochs trained and best
# validation MAE, and the ratio of the wall times.
set -u
W=${1:-$(mktemp -d)}; mkdir -p "$W"
PY=${PY:-python}
sed -e 's/^split = .*/split = [0.5, 0.25, 0.25]/' -e 's/^sequence_length = 24/sequence_length = 48/' \
    -e 's/^epochs = 6/epochs = 10/' -e 's/^name = "jena_sweep"/name = "jena_sweep_heavy"/' \
    configs/jena_sweep.toml > "$W/median.toml"
sed 's/^pruner = .*/pruner = "none"/' "$W/median.toml" > "$W/none.toml"
run() {
  local s=$(date +%s%N)
  env -u RNNKIT_DATA_DIR nice -n 10 $PY -m rnnkit sweep "$W/$1.toml" --trials 12 --output "$W/$1" > "$W/$1.log" 2>&1
  echo "$1 rc=$? wall_ms=$(( ($(date +%s%N) - s) / 1000000 ))" > "$W/$1.wall"
}
run median & run none & wait
$PY - "$W" <<'PY'
import json, sys
from pathlib import Path
import optuna
from rnnkit.search import _quiet_optuna, opened
W = Path(sys.argv[1])
walls = {}
for name in ("median", "none"):
    wall = dict(kv.split("=") for kv in (W / f"{name}.wall").read_text().split()[1:])
    walls[name] = int(wall["wall_ms"]) / 1000
    with _quiet_optuna(), opened(f"sqlite:///{W / name / 'study.db'}") as storage:
        trials = optuna.load_study(study_name="jena_sweep_heavy", storage=storage).get_trials()
    epochs = sum(json.loads((W / name / "trials" / f"{t.number:04d}" / "models" / "gru" / "result.json").read_text())
                 ["epochs_run"] if t.state.name == "COMPLETE" else len(t.intermediate_values) for t in trials)
    states = {s: [t.state.name for t in trials].count(s) for s in ("COMPLETE", "PRUNED", "FAIL")}
    best = min(t.value for t in trials if t.state.name == "COMPLETE")
    print(f"{name:6s} wall {walls[name]:.1f} s, {states}, {epochs} epochs, best mae_val {best:.4f}")
print(f"median pruning / none: wall {walls['median'] / walls['none']:.2f}x")
PY
