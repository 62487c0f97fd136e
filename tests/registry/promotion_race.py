"""Racing promoter processes (``promoter.py``) and checking what their event log shows."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROMOTER = Path(__file__).with_name("promoter.py")


def race(
    uri: str,
    name: str,
    versions: list[str],
    work: Path,
    *,
    slow: dict[str, float] | None = None,
    sqlite_db: bool = False,
    timeout_s: float = 300.0,
) -> tuple[list[dict], list[dict]]:
    """Start one promoter process per version, release them together once all are connected.

    Args:
        uri: the tracking store every promoter uses.
        name: the registered model.
        versions: the versions promoted, one promoter process each.
        work: a folder for the start signal and the promoters' event log.
        timeout_s: how long to wait for the promoters.
        slow: ``{version: seconds}``: those promoters delay each registry write that long.
        sqlite_db: pass the SQLite file explicitly (else the lock finds it from the URI).

    Returns:
        ``(results, events)``: each promoter's result, and the event lines of all of them.
    """
    work.mkdir(parents=True, exist_ok=True)
    go, events = work / "go", work / "events.jsonl"
    procs = []
    for v in versions:
        env = dict(os.environ)
        if slow and v in slow:
            env["SKYSENSE_TEST_WRITE_DELAY_S"] = str(slow[v])
        procs.append(
            subprocess.Popen(
                [sys.executable, str(PROMOTER), uri, name, v, str(go), str(events)]
                + (["--sqlite-db"] if sqlite_db else []),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    deadline = time.monotonic() + timeout_s
    try:
        while not all(Path(f"{go}.ready-{v}").exists() for v in versions):
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"promoter exited early: {p.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("promoters did not get ready in time")
            time.sleep(0.05)
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    lines = [json.loads(ln) for ln in events.read_text().splitlines() if ln.strip()]
    return results, lines


def critical_sections(events: list[dict]) -> dict[int, tuple[float, float]]:
    """``{pid: (acquired, released)}``; each promoter holds the lock exactly once."""
    out: dict[int, tuple[float, float]] = {}
    for pid in sorted({e["pid"] for e in events}):
        mine = sorted(
            (e for e in events if e["pid"] == pid and e["event"] != "write"), key=lambda e: e["t0"]
        )
        assert [e["event"] for e in mine] == ["acquired", "released"], mine
        out[pid] = (mine[0]["t0"], mine[1]["t0"])
    return out


def assert_mutual_exclusion(events: list[dict], promoters: int) -> dict[int, tuple[float, float]]:
    """No two critical sections overlap, and every registry write lies inside its writer's.

    Returns:
        The critical sections, ``{pid: (acquired, released)}``.
    """
    sections = critical_sections(events)
    assert len(sections) == promoters, sections
    ordered = sorted(sections.items(), key=lambda item: item[1][0])
    for (pid_a, (_, end_a)), (pid_b, (start_b, _)) in itertools.pairwise(ordered):
        assert start_b >= end_a, (
            f"promoters {pid_a} and {pid_b} were inside the lock together: {pid_b} entered "
            f"{end_a - start_b:.3f} s before {pid_a} left; sections {ordered}"
        )
    for e in events:
        if e["event"] == "write":
            start, end = sections[e["pid"]]
            assert start <= e["t0"] and e["t1"] <= end, (
                f"promoter {e['pid']} wrote {e['what']} outside its critical section "
                f"({e['t0']:.3f}-{e['t1']:.3f} not in {start:.3f}-{end:.3f})"
            )
    return sections


def assert_history_chain(history: list[dict], expected_versions: set[str], champion: str) -> None:
    """One entry per promotion or refusal, each naming the champion of its time, none lost."""
    assert {h["version"] for h in history} == expected_versions, history
    assert len(history) == len(expected_versions), history
    current = None
    for record in history:
        assert record["previous_champion"] == current, history
        if record["action"] == "promote":
            current = record["version"]
    assert current == champion, history
