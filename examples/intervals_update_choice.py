"""Static or rolling conformal intervals, and the rolling window: chosen on validation only.

The validation windows of a trained run are cut in two halves in time: the first calibrates, the
second is scored (the last ``horizon`` windows of the first half are left out, so that every
calibration truth is known before the first scored forecast). Static split conformal and rolling
windows of several sizes are compared there; the test part is then scored for each (report only).

    rnnkit train configs/chollet_intervals.toml --threads 1 --output runs/intervals
    python examples/intervals_update_choice.py runs/intervals

Rule: the setting whose worst level misses its nominal coverage by least on the second validation
half, over persistence and the run's trained models (mean over models); within 0.002 of the best,
the narrower one.
"""

from __future__ import annotations

import sys

import numpy as np

from rnnkit import intervals as iv
from rnnkit.runs import load_run, load_trained
from rnnkit.tasks import task_for

SETTINGS = [("static", None), ("rolling", 168), ("rolling", 720), ("rolling", 2160), ("rolling", 4320)]


def scores(cal, point, truth, clock):
    return iv.interval_scores(cal, point, truth, clock)


def main(run: str) -> None:
    config, _, stored = load_run(run)
    task = task_for(config)
    task.prepare()
    p = task.prepared
    levels = config.intervals.levels if config.intervals else [0.8, 0.9]
    models = {"persistence": task.baselines()["persistence"]}
    models.update({s.name: load_trained(run, s.name)[1] for s in config.models})
    val, test = p.windows["val"], p.windows["test"]
    vclock, tclock = iv.clock_of(val), iv.clock_of(test)
    half = len(val) // 2
    first = np.arange(half - config.windows.horizon)  # calibration truths known before the second half starts
    second = np.arange(half, len(val))
    rows = []
    for name, model in models.items():
        vp, vt = iv.forecasts(model, val, scale=p.scale, offset=p.offset)
        tp, tt = iv.forecasts(model, test, scale=p.scale, offset=p.offset)
        for update, window in SETTINGS:
            cal = iv.calibrate(vp[first], vt[first], levels, update, window, vclock[1][first])
            s2 = scores(cal, vp[second], vt[second], (vclock[0][second], vclock[1][second]))
            full = iv.calibrate(vp, vt, levels, update, window, vclock[1])
            st = scores(full, tp, tt, tclock)
            rows.append((name, update if window is None else f"rolling {window}", s2, st))
    pct = [iv.percent(a) for a in levels]
    head = (
        "model".ljust(28)
        + "setting".ljust(14)
        + "".join(f"{part} {q}% cov/width".rjust(22) for part in ("val2", "test") for q in pct)
    )
    print(head)
    for name, setting, s2, st in rows:
        cells = "".join(
            f"{s[f'conformal_{q}_coverage']:.3f} / {s[f'conformal_{q}_width']:.2f}".rjust(22)
            for s in (s2, st)
            for q in pct
        )
        print(name[:27].ljust(28) + setting.ljust(14) + cells)
    print("\nsecond validation half, mean over models: worst |coverage - nominal|, mean width of the last level")
    summary = {}
    for _, setting, _, _ in rows[: len(SETTINGS)]:
        picked = [s2 for _, st_, s2, _ in rows if st_ == setting]
        miss = np.mean([max(abs(s[f"conformal_{q}_coverage"] - a) for q, a in zip(pct, levels)) for s in picked])
        width = np.mean([s[f"conformal_{pct[-1]}_width"] for s in picked])
        summary[setting] = (miss, width)
        print(f"  {setting:<14} miss {miss:.4f}  width {width:.3f}")
    best = min(m for m, _ in summary.values())
    chosen = min((s for s, (m, _) in summary.items() if m <= best + 0.002), key=lambda s: summary[s][1])
    print(f"chosen on validation: {chosen}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/intervals_update_choice.py RUN")
    main(sys.argv[1])
