"""The distributed path under faults: a real dask scheduler and workers, one killed mid-sweep.

The scheduler and the two workers are separate ``dask`` processes on 127.0.0.1
(tests/cluster.py), the sweep runs through ``sim sweep --scheduler``, one worker
is SIGKILLed while runs are in flight, and the stored table must equal a serial
run's to the last bit: dask reschedules the lost runs, and every run is a pure
function of its parameters and seed.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.experiments.store import load_results

TINY = Path(__file__).parent / "data" / "tiny.yaml"


def sweep_file(tmp_path: Path, days: int) -> Path:
    """12 runs of the tiny scenario (3 points x 4 replicates), one run per stored part."""
    path = tmp_path / "cluster_sweep.yaml"
    path.write_text(
        f"name: cluster_sweep\nscenario: {TINY}\ndays: {days}\nroot_seed: 17\nreplicates: 4\nbatch_size: 1\n"
        "design: {method: factorial}\n"
        "parameters:\n  mechanisms.rally: {values: [0.0, 1.0, 2.5]}\n"
        "outcomes: [coop_resisting_mean, protest_resisting_mean, displaced_final]\n"
    )
    return path


def parts(folder: Path) -> int:
    part_dir = folder / "parts"
    return len([p for p in part_dir.glob("part-*.parquet")]) if part_dir.exists() else 0


def test_a_sweep_survives_a_worker_killed_mid_sweep(tmp_path, dask_cluster, sim_command):
    cluster = dask_cluster(2)
    assert cluster.worker_names() == ["w0", "w1"]
    sweep = sweep_file(tmp_path, days=60)
    out = tmp_path / "distributed"
    folder = out / "cluster_sweep"
    log = open(tmp_path / "sweep.log", "w")
    proc = subprocess.Popen(
        [*sim_command, "sweep", str(sweep), "--scheduler", cluster.address, "--out", str(out)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while parts(folder) < 2:  # mid-sweep: some runs stored, the others planned or in flight
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.05)
        cluster.kill_worker(1)
        stored_at_kill = parts(folder)
        assert proc.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text() + cluster.logs()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert stored_at_kill < 12, "the worker was killed after the sweep had finished"
    assert cluster.worker_names() == ["w0"]  # the scheduler saw it go

    distributed = load_results(folder)
    assert len(distributed) == 12 and (distributed["status"] == "ok").all()
    timing = load_results(folder, timing=True)
    assert timing["worker"].str.endswith(f":{cluster.workers[0].pid}").any()  # the survivor ran the rest

    res = subprocess.run(
        [*sim_command, "sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "serial")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    pd.testing.assert_frame_equal(distributed, load_results(tmp_path / "serial" / "cluster_sweep"), check_exact=True)


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_local_dask_cluster_shuts_down_quietly(tmp_path, sim_command, attempt):
    sweep = sweep_file(tmp_path, days=3)
    res = subprocess.run(
        [*sim_command, "sweep", str(sweep), "--dask-local", "2", "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "12 run now" in res.stdout
    for noise in ("Traceback", "CommClosedError", "Exception", "distributed."):
        assert noise not in res.stderr, res.stderr
