"""Parallel test workers share the machine's cores instead of fighting over them.

`python -m pytest -n 2` (pytest-xdist) runs two worker processes. Left alone, each would run torch, vLLM and the
processes it starts on every core, and OpenMP threads that outnumber the cores wait on each other many times
over. So each worker takes an even share of the cores as it starts, before anything imports torch: its
OpenMP/MKL thread count (inherited by every process it starts, Ray's replicas included) and the cores vLLM binds
its threads to. Ray starts its workers at a lower priority (niceness 15), which next to a busy test worker leaves
them almost no CPU; a worker's Ray cluster runs them at the priority of the worker itself. A run without workers
keeps the whole machine and Ray's defaults.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
VLLM_BIND_VARIABLE = "VLLM_CPU_OMP_THREADS_BIND"
RAY_NICENESS_VARIABLE = "RAY_worker_niceness"


def machine_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def worker_cores() -> list[int]:
    """This worker's even share of the cores (every core outside a worker)."""
    cores = machine_cores()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return cores
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = max(1, len(cores) // workers)
    start = int(worker.removeprefix("gw")) * share % len(cores)
    return cores[start : start + share]


def take_this_workers_cores() -> None:
    """Set this worker's thread count, vLLM cores and Ray priority in its environment (nothing outside a worker)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    cores = worker_cores()
    for name in THREAD_VARIABLES:
        os.environ[name] = str(len(cores))
    os.environ[VLLM_BIND_VARIABLE] = ",".join(str(core) for core in cores)
    os.environ.setdefault(RAY_NICENESS_VARIABLE, "0")


def engine_environment(**changes: str) -> dict[str, str]:
    """The environment for an engine process this test starts: this worker's threads, plus `changes`."""
    return {**os.environ, "OMP_NUM_THREADS": str(len(worker_cores())), **changes}


def whole_machine_environment(**changes: str) -> dict[str, str]:
    """The environment for a process that splits the machine's cores itself (vLLM data parallel on CPU)."""
    kept = {name: value for name, value in os.environ.items() if name not in (*THREAD_VARIABLES, VLLM_BIND_VARIABLE)}
    return {**kept, **changes}
