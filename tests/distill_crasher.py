"""Test helper: runs `sdd-data distill` in forked children, each killed with `os._exit(137)` at a chosen call.

Started once as `python distill_crasher.py`; it imports the heavy libraries, prints `ready`, then reads one
JSON job per line on stdin and answers one JSON line per job on stdout: `{"exit": <code>}`, or
`{"exit": null}` when the child ran past the job's timeout (it is then killed). A job is

    {"argv": [...distill arguments...], "log": "<file for the child's stdout and stderr>",
     "timeout": <seconds>, "kill": null | {"target": "module:attribute.path", "match": "<text>",
                                            "nth": <n>, "when": "before" | "after" | "torn" | "partly"}}

With a kill, the callable at `target` is wrapped in the child: its n-th call whose arguments contain `match`
ends the process before the call, right after it, after it with its output damaged ("torn": a file
written by the call is cut to half its size, a folder loses half its files), as if killed half-way
through the write, or with only that damage done instead of the call ("partly": a deletion half done).
Nothing of the kind lives in the product code: the patch exists only in the child. Forking a warm process
keeps each run to the distill work itself (imports take seconds on a small machine).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path

KILLED = 137


def _resolve(target: str):
    module_name, _, attribute_path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = attribute_path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, name


def _tear(args: tuple) -> None:
    """Damage what the call wrote: the last argument that names an existing file or folder."""
    for value in reversed(args):
        if not isinstance(value, (str, os.PathLike)):
            continue
        path = Path(value)
        if path.is_file():
            os.truncate(path, path.stat().st_size // 2)
            return
        if path.is_dir():
            files = sorted(item for item in path.rglob("*") if item.is_file())
            for item in files[: max(1, len(files) // 2)]:
                item.unlink()
            return


def install_kill(kill: dict) -> None:
    """Wrap the target so that its n-th matching call ends the process."""
    owner, name = _resolve(kill["target"])
    original = getattr(owner, name)
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        described = " ".join(str(value) for value in (*args, *kwargs.values()))
        if kill["match"] in described:
            calls += 1
            if calls == kill["nth"]:
                if kill["when"] == "before":
                    os._exit(KILLED)
                if kill["when"] != "partly":
                    original(*args, **kwargs)
                if kill["when"] in ("torn", "partly"):
                    _tear(tuple(args) + tuple(kwargs.values()))
                os._exit(KILLED)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def run_child(job: dict) -> None:
    """In the forked child: send output to the log, install the kill, run the CLI, exit with its code."""
    code = 1
    try:
        log = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        if job.get("kill"):
            install_kill(job["kill"])
        from sdd_data.cli import main

        code = main(["distill", *job["argv"]])
    except BaseException:  # noqa: BLE001 -- the child reports any failure through its exit code and log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def serve() -> None:
    import datasets  # noqa: F401 -- imported once here so that each child starts warm
    import pyarrow.parquet  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401

    import sdd_data.cli  # noqa: F401
    import sdd_data.distill.stage  # noqa: F401
    import sdd_data.engines.transformers_engine  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(job)
        print(json.dumps({"exit": wait(pid, job.get("timeout", 120))}), flush=True)


if __name__ == "__main__":
    serve()
