"""Inspect page benchmark: file size, build time and load time in headless Chromium for 1k, 10k and 100k rows.

Each size gets a synthetic finished distill run (the files and columns the distill stage writes; response
lengths drawn from a log-normal around 120 words, rewrites sharing most of their words with the source). Then
`sdd-data inspect` builds its page (timed), and headless Chromium opens it `--repeats` times; the page itself
records when its embedded rows were parsed and when its first screen (summary, charts, the list's visible rows
and one expanded row with its diff) was drawn, in ms since navigation start. The median of the repeats is kept,
with the wall time of the whole browser process (start-up, load, printing the DOM) beside it.

    python benchmarks/bench_inspect.py [--sizes 1000,10000,100000] [--repeats 3] [--screenshot docs/inspect.png]

Needs Chromium (`apt-get install -y chromium`). Prints a table and writes benchmarks/results/inspect.json.
`--screenshot` also writes a screenshot of a small demo run's page with one row expanded.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sdd_data.inspect import InspectConfig, inspect_output

RESULTS = Path(__file__).resolve().parent / "results" / "inspect.json"
WORDS = (
    "the of and to a in is that for it with as was on be by this are or at from which an have not they we can "
    "number total answer first second then each so more than step result price cost hours days minutes left"
).split()
OUTCOMES = (
    [("rewrite", "ok")] * 6
    + [("original", "answer_mismatch")] * 2
    + [
        ("original", "truncated"),
        ("original", "template_leak"),
        ("dropped", "invalid_row:response_empty"),
    ]
)
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def browser() -> str:
    for name in CHROMIUM:
        if shutil.which(name):
            return str(shutil.which(name))
    raise SystemExit("this benchmark needs Chromium: apt-get update && apt-get install -y chromium")


def _rewrite(words: list[str], generator: np.random.Generator) -> list[str]:
    """The source's words with about one in five replaced and a few added."""
    out = [generator.choice(WORDS) if generator.random() < 0.2 else word for word in words]
    return out + list(generator.choice(WORDS, size=int(generator.integers(0, 20))))


def write_run(folder: Path, rows: list[dict], stats_extra: dict | None = None) -> Path:
    """A finished distill run holding `rows`, its stats counted from them."""
    folder.mkdir(parents=True)
    kept = [row for row in rows if row["decision"] != "dropped"]
    dropped = [row for row in rows if row["decision"] == "dropped"]
    schema = pa.Table.from_pylist(rows).schema
    pq.write_table(pa.Table.from_pylist(kept, schema=schema), folder / "distilled.parquet")
    pq.write_table(pa.Table.from_pylist(dropped, schema=schema), folder / "dropped.parquet")
    (folder / "data").mkdir()
    (folder / "run.json").write_text("{}")
    reasons_by_decision: dict[str, Counter] = {}
    by_task: dict[str, dict] = {}
    for row in rows:
        if row["decision"] != "rewrite":
            reasons_by_decision.setdefault(row["decision"], Counter())[row["reason"]] += 1
        task = by_task.setdefault(row["task"], {"rows": 0, "decisions": Counter(), "reasons": Counter()})
        task["rows"] += 1
        task["decisions"][row["decision"]] += 1
        task["reasons"][row["reason"]] += 1
    completion = sum(row["teacher_tokens"] or 0 for row in rows)
    stats = {
        "rows_in": len(rows),
        "rows_out": len(kept),
        "decisions": dict(Counter(row["decision"] for row in rows)),
        "reasons": dict(Counter(row["reason"] for row in rows)),
        "reasons_by_decision": {name: dict(counts) for name, counts in reasons_by_decision.items()},
        "by_task": {
            name: {"rows": task["rows"], "decisions": dict(task["decisions"]), "reasons": dict(task["reasons"])}
            for name, task in by_task.items()
        },
        "tokens": {"prompt": sum(row["prompt_tokens"] or 0 for row in rows), "completion": completion},
        "throughput": {"generated_rows": len(kept), "seconds": 600.0, "rows_per_second": len(kept) / 600.0},
        "teacher": {"name": "SmolLM2-135M-Instruct", "revision": None, "quantization": None},
        "engine": {"engine": "transformers", "dtype": "float32", "device": "cpu"},
        "template": {"name": "chat", "description": "the SDFT prompt through the tokenizer's chat template"},
        "seed_policy": "greedy decoding",
        "source": {"name": "synthetic.jsonl"},
        "config": {"max_new_tokens": 512, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": 0},
        **(stats_extra or {}),
    }
    (folder / "stats.json").write_text(json.dumps(stats))
    return folder


def synthetic_rows(count: int, seed: int = 0) -> list[dict]:
    generator = np.random.default_rng(seed)
    lengths = np.clip(generator.lognormal(np.log(120), 0.6, size=count), 3, 1500).astype(int)
    rows = []
    for index in range(count):
        decision, reason = OUTCOMES[index % len(OUTCOMES)]
        source = list(generator.choice(WORDS, size=int(lengths[index])))
        teacher = _rewrite(source, generator)
        rows.append(
            {
                "id": f"row-{index:07d}",
                "source": "synthetic.jsonl",
                "instruction": "Question: " + " ".join(generator.choice(WORDS, size=int(generator.integers(8, 40)))),
                "input": "",
                "response": " ".join(source),
                "reference_answer": str(index % 97),
                "task": ("math", "free", "mc", "code")[index % 4],
                "meta": "",
                "teacher_response": None if decision == "dropped" else " ".join(teacher),
                "decision": decision,
                "reason": reason,
                "extracted_answer": str(index % 97) if reason == "ok" else str(index % 89),
                "finish_reason": "length" if reason == "truncated" else "stop",
                "prompt_tokens": 60 + int(lengths[index] * 1.3),
                "teacher_tokens": None if decision == "dropped" else int(len(teacher) * 1.3),
            }
        )
    return rows


def open_page(page: Path, fragment: str = "") -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.resolve().as_uri() + fragment],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    wall = time.perf_counter() - started
    head = result.stdout[:2000]
    found = {name: re.search(rf'{name}="([\d.]+)"', head) for name in ("data-parse-ms", "data-first-screen-ms")}
    if not all(found.values()) or 'data-ready="1"' not in head:
        raise SystemExit(f"the page at {page} did not finish its first screen")
    rendered = result.stdout.count('class="row')
    return {
        "parse_ms": float(found["data-parse-ms"].group(1)),  # type: ignore[union-attr]
        "first_screen_ms": float(found["data-first-screen-ms"].group(1)),  # type: ignore[union-attr]
        "browser_seconds": wall,
        "rows_in_dom": rendered,
    }


def measure(count: int, repeats: int, work: Path) -> dict:
    run = write_run(work / f"run-{count}", synthetic_rows(count))
    started = time.perf_counter()
    result = inspect_output(InspectConfig(path=str(run)), show_progress=False)
    build = time.perf_counter() - started
    loads = [open_page(result.path, "#row=row-0000003") for _ in range(repeats)]
    return {
        "rows": count,
        "bytes": result.size,
        "build_seconds": build,
        "text_limit": result.view.rows["text_limit"] if result.view.rows else None,
        "texts_cut": result.view.rows["texts_cut"] if result.view.rows else None,
        **{name: statistics.median(load[name] for load in loads) for name in loads[0]},
        "repeats": repeats,
    }


DEMO = [
    (
        "math",
        "A baker makes 24 muffins and sells 3 boxes of 6. How many muffins are left?",
        "He sells 3 * 6 = 18 muffins.\nSo 24 - 18 = 6 muffins are left.\n#### 6",
        "The baker sells 3 boxes with 6 muffins each, which is 3 * 6 = 18 muffins.\n"
        "That leaves 24 - 18 = 6 muffins.\nThe answer is 6.",
        "rewrite",
        "ok",
        "6",
    ),
    (
        "math",
        "Tom reads 15 pages a day. How many pages does he read in two weeks?",
        "Two weeks is 14 days.\n15 * 14 = 210 pages.\n#### 210",
        "Two weeks have 7 * 2 = 14 days.\nTom reads 15 * 14 = 200 pages.\nThe answer is 200.",
        "original",
        "answer_mismatch",
        "200",
    ),
    (
        "math",
        "A shirt costs $20 and is 25% off. What is the sale price?",
        "25% of 20 is 5.\n20 - 5 = 15.\n#### 15",
        "The discount is 25% of $20, which is $5.\nThe sale price is 20 - 5 = $15.\nThe answer is 15.",
        "rewrite",
        "ok",
        "15",
    ),
    (
        "free",
        "Give three tips for staying focused while studying.",
        "1. Put your phone in another room.\n2. Study in short blocks with breaks.\n3. Set one clear goal per session.",
        "1. Keep your phone out of reach.\n2. Work in short blocks and take real breaks.\n"
        "3. Decide on one clear goal before each session.",
        "rewrite",
        "ok",
        None,
    ),
    (
        "free",
        "Explain what a prime number is.",
        "A prime number is a whole number above 1 whose only divisors are 1 and itself.",
        "Based on the reference answer, a prime number is a whole number greater than 1 that can only be "
        "divided by 1 and itself.",
        "original",
        "template_leak",
        None,
    ),
    (
        "mc",
        "Which planet is closest to the Sun? A) Venus B) Mercury C) Mars D) Earth",
        "The answer is B.",
        "Mercury orbits closest to the Sun, so the answer is B.",
        "rewrite",
        "ok",
        "B",
    ),
    (
        "code",
        "Write a Python function that reverses a string.",
        "```python\ndef reverse(text):\n    return text[::-1]\n```",
        "```python\ndef reverse(text: str) -> str:\n    return text[::-1]\n```",
        "rewrite",
        "ok",
        None,
    ),
    (
        "math",
        "A train travels 180 km in 3 hours. What is its average speed?",
        "180 / 3 = 60 km/h.\n#### 60",
        "The train covers 180 km in 3 hours, so its speed is 180 / 3 = 60 km per",
        "original",
        "truncated",
        None,
    ),
    ("free", "   ", "x", None, "dropped", "invalid_row:instruction_empty", None),
]


def write_screenshot(path: Path, work: Path) -> None:
    rows = []
    for index, (task, instruction, response, teacher, decision, reason, extracted) in enumerate(DEMO * 3):
        rows.append(
            {
                "id": f"demo-{index:02d}",
                "source": "demo.jsonl",
                "instruction": instruction,
                "input": "",
                "response": response,
                "reference_answer": response.rsplit("#### ", 1)[1] if "#### " in response else None,
                "task": task,
                "meta": "",
                "teacher_response": teacher,
                "decision": decision,
                "reason": reason,
                "extracted_answer": extracted,
                "finish_reason": "length" if reason == "truncated" else (None if teacher is None else "stop"),
                "prompt_tokens": None if teacher is None else 80 + len(instruction) // 4,
                "teacher_tokens": None if teacher is None else len(teacher) // 4,
            }
        )
    run = write_run(
        work / "demo",
        rows,
        {
            "source": {"name": "demo.jsonl"},
            "config": {
                "max_new_tokens": 512,
                "temperature": 0.0,
                "top_p": 1.0,
                "top_k": 0,
                "seed": 0,
                "on_failure": "original",
            },
        },
    )
    page = inspect_output(InspectConfig(path=str(run)), show_progress=False).path
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2350",
            f"--screenshot={path.resolve()}",
            page.resolve().as_uri() + "#row=demo-00",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screenshot", help="also write a screenshot of a demo run's page here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.screenshot:
            write_screenshot(Path(args.screenshot), Path(work))
        results = [measure(int(size), args.repeats, Path(work)) for size in args.sizes.split(",") if size]
    print(
        f"{'rows':>8} {'page MB':>8} {'text cut at':>11} {'build s':>8} {'parse ms':>9} {'first screen ms':>16} "
        f"{'browser s':>10} {'rows in DOM':>11}"
    )
    for row in results:
        print(
            f"{row['rows']:>8,} {row['bytes'] / 1e6:>8.1f} {row['text_limit']:>11,} {row['build_seconds']:>8.1f} "
            f"{row['parse_ms']:>9.0f} {row['first_screen_ms']:>16.0f} {row['browser_seconds']:>10.1f} "
            f"{row['rows_in_dom']:>11}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
