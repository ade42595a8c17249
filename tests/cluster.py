"""A real dask cluster on the loopback interface for tests: a ``dask scheduler`` and ``dask worker`` processes.

Unlike a ``LocalCluster``, every part is a separate process started with the ``dask``
command line, the way a cluster runs on other machines, so a test can kill a worker
outright (SIGKILL) and see what the scheduler and the client make of it. Workers
import ``sim`` from this checkout (``PYTHONPATH``), as an installed package would be
imported on a real cluster.

Use the ``dask_cluster`` fixture (tests/conftest.py), or :class:`DaskCluster` as a
context manager; every process is stopped at the end, whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dask_command() -> list[str]:
    """The ``dask`` command line of this environment."""
    script = Path(sys.executable).parent / "dask"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dask"]


class DaskCluster:
    """A scheduler and ``n_workers`` single-threaded workers, each its own process on 127.0.0.1.

    Args:
        folder: where the processes' logs and worker scratch space go.
        n_workers: workers to start.
        timeout: seconds to wait for the scheduler and every worker to be up.
    """

    def __init__(self, folder: Path, n_workers: int = 2, timeout: float = 120.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n_workers = n_workers
        self.timeout = timeout
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "wb")  # closed in stop(); a file, so no pipe can fill up
        proc = subprocess.Popen(
            [*dask_command(), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.folder,
            start_new_session=True,  # its own process group: stopped as a whole, nothing else touched
        )
        proc._log = log  # type: ignore[attr-defined]
        return proc

    def start(self) -> DaskCluster:
        """Start the scheduler, then the workers; return once all workers are connected."""
        self.scheduler = self._start(
            "scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"]
        )
        for i in range(self.n_workers):
            self.start_worker(f"w{i}")
        self.wait_for_workers(self.n_workers)
        return self

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        """Start one more worker process (one thread, no nanny: killing it kills the worker)."""
        proc = self._start(
            name,
            [
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--local-directory",
                str(self.folder / name),
                "--death-timeout",
                str(int(self.timeout)),
            ],
        )
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int) -> None:
        """Block until ``n`` workers are connected to the scheduler (or fail after ``timeout``)."""
        from distributed import Client

        deadline = time.monotonic() + self.timeout
        with Client(self.address, timeout=self.timeout) as client:
            while len(client.nthreads()) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"only {len(client.nthreads())} of {n} dask workers came up: {self.logs()}")
                if self.scheduler is not None and self.scheduler.poll() is not None:
                    raise RuntimeError(f"dask scheduler exited: {self.logs()}")
                time.sleep(0.2)

    def worker_names(self) -> list[str]:
        """Names of the workers the scheduler knows now."""
        from distributed import Client

        with Client(self.address, timeout=self.timeout) as client:
            info = client.scheduler_info(n_workers=-1)["workers"]
            return sorted(w["name"] for w in info.values())

    def kill_worker(self, index: int) -> None:
        """SIGKILL one worker process: no goodbye to the scheduler, its tasks in flight are lost."""
        proc = self.workers[index]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def logs(self) -> str:
        """The tail of every process's log, for failure messages."""
        parts = []
        for log in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def stop(self, grace: float = 3.0) -> None:
        """Stop every process started here: SIGTERM to all, then SIGKILL to whatever is still running
        ``grace`` seconds later (one deadline for all of them: a worker busy in a task, or still
        importing on a loaded machine, may ignore SIGTERM, and waiting 10 s for each in turn made a
        test's teardown take 20 s)."""
        procs = [*self.workers, *([self.scheduler] if self.scheduler else [])]
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
            proc._log.close()  # type: ignore[attr-defined]

    def __enter__(self) -> DaskCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
