"""OpenMP's waiting threads sleep under rnnkit unless the user chose (issue 18, part 4).

A spinning thread spends its core's share, so on a loaded machine it is descheduled for whole
time slices and every parallel region waits for it (benchmarks/bench_load.py measures the
effect). These tests check the setting and its effect: CPU time burnt while the process sleeps.
"""

import os
import subprocess
import sys

import pytest

PROBE = """
import time, rnnkit, torch
torch.set_num_threads(2)
x = torch.ones(4_000_000)
for _ in range(5):
    x.add_(1.0)  # a parallel region: both threads work, then the helper waits
start = time.process_time()
time.sleep(0.3)
print(os.environ.get("OMP_WAIT_POLICY", ""), time.process_time() - start)
"""


def probe(policy: str | None) -> tuple[str, float]:
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy is not None:
        environment["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", "import os\n" + PROBE], env=environment, capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    return out[0], float(out[1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs for a second OpenMP thread")
def test_waiting_threads_sleep_by_default_and_the_users_choice_wins():
    policy, burnt = probe(None)
    assert policy == "PASSIVE" and burnt < 0.03  # the helper thread sleeps while the process sleeps
    policy, burnt = probe("active")
    assert policy == "active" and burnt > 0.06  # the user's choice: it spins through the whole sleep


def test_doctor_says_which_wait_policy_is_in_force():
    from rnnkit.doctor import wait_policy_line

    assert wait_policy_line().startswith(f"OpenMP wait policy: {os.environ.get('OMP_WAIT_POLICY')}")
