"""The regression guard: every shared capture and every shipped scenario through `analyze`, reduced to
what a change of verdict shows: calls (call, topology), findings (call, code, severity, frames) and
stream counts. The expected values live in tests/topology/expected_results.json, one call and one
finding per line, sorted, so a change reads as a diff.

    python -m tests.topology.regress            # list the captures whose results differ
    python -m tests.topology.regress --update   # rewrite the expected file from the current code

Jobs: each shared capture alone (public/<path>); each scenario's capture points alone and all together,
with the scenario's network profile (scenario/<name>/<point>, scenario/<name>/*).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from typing import NamedTuple

from tests.conftest import CAPTURES, SHARED, public_captures

EXPECTED = Path(__file__).with_name("expected_results.json")


class Job(NamedTuple):
    key: str
    paths: tuple[str, ...]
    profile: str | None


def public_jobs() -> list[Job]:
    return [Job(f"public/{p.relative_to(SHARED).as_posix()}", (str(p),), None) for p in public_captures()]


def scenario_jobs() -> list[Job]:
    out = []
    for truth in sorted(CAPTURES.glob("**/truth.json")):  # nested too: impaired/*, plans/office/*
        folder = truth.parent
        name = folder.relative_to(CAPTURES).as_posix()
        profile = json.loads(truth.read_text()).get("profile")
        prof = str(folder / profile) if profile and (folder / profile).exists() else None
        points = sorted(folder.glob("*.pcap"))
        out += [Job(f"scenario/{name}/{p.name}", (str(p),), prof) for p in points]
        if len(points) > 1:
            out.append(Job(f"scenario/{name}/*", tuple(str(p) for p in points), prof))
    return out


def jobs() -> list[Job]:
    return public_jobs() + scenario_jobs()


def _frames(v) -> list[int]:
    return [int(x) for x in v] if isinstance(v, list | tuple) else []


@cache
def result(job: Job) -> dict:
    """What the guard compares, for one job (an exception is a result too: its type and message)."""
    import pandas as pd

    from analyzer import analyze

    try:
        a = analyze(list(job.paths), network=job.profile)
        calls, findings, streams = a.calls, a.findings, a.streams
    except Exception as e:  # a crash is what the guard must show
        return {"error": f"{type(e).__name__}: {e}"}
    rows = [
        {
            "call": None if pd.isna(f.call) else int(f.call),
            "code": f.code,
            "severity": f.severity,
            "frames": _frames(f.frames),
        }
        for f in findings.itertuples(index=False)
    ]
    rows.sort(key=lambda r: (-1 if r["call"] is None else r["call"], r["code"], r["severity"], r["frames"]))
    return {
        "calls": [{"call": int(c.call), "topology": c.topology} for c in calls.itertuples(index=False)],
        "findings": rows,
        "streams": len(streams),
        "stream_kinds": dict(sorted(Counter(str(k) for k in streams.kind).items())),
    }


def dumps(results: dict[str, dict]) -> str:
    """Valid JSON laid out for diffs: keys sorted, one call / one finding per line."""
    out = ["{"]
    keys = sorted(results)
    for i, key in enumerate(keys):
        r = results[key]
        out.append(f"  {json.dumps(key)}: {{")
        fields = []
        if "error" in r:
            fields.append(f'    "error": {json.dumps(r["error"])}')
        else:
            for name in ("calls", "findings"):
                items = [f"      {json.dumps(x, sort_keys=True)}" for x in r[name]]
                body = ("[\n" + ",\n".join(items) + "\n    ]") if items else "[]"
                fields.append(f'    "{name}": {body}')
            fields.append(f'    "streams": {r["streams"]}')
            fields.append(f'    "stream_kinds": {json.dumps(r["stream_kinds"], sort_keys=True)}')
        out.append(",\n".join(fields))
        out.append("  }" + ("," if i < len(keys) - 1 else ""))
    out.append("}")
    return "\n".join(out) + "\n"


def load() -> dict[str, dict]:
    return json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}


def current(selected: list[Job] | None = None) -> dict[str, dict]:
    return {j.key: result(j) for j in (selected if selected is not None else jobs())}


def main(argv: list[str]) -> int:
    update = "--update" in argv
    now = current()
    old = load()
    if update:
        # keep the entries of captures absent here (the shared folder is only on the dev machines)
        kept = {k: v for k, v in old.items() if k not in now and k.startswith("public/") and not SHARED.is_dir()}
        EXPECTED.write_text(dumps({**kept, **now}))
        print(f"wrote {EXPECTED} ({len(now)} jobs)")
        return 0
    differ = sorted(k for k in set(now) | set(old) if now.get(k) != old.get(k))
    for k in differ:
        print(f"differs: {k}")
    hint = "; --update rewrites it" if differ else ""
    print(f"{len(differ)} of {len(now)} jobs differ from {EXPECTED.name}{hint}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
