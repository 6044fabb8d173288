"""The project's own documentation stays true to the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

from analyzer.topology.profile import KEYS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_profile_reference_names_every_key():
    text = (DOCS / "profile.md").read_text()
    rows = set(re.findall(r"^\| `\[(\w+)\]` \| `(\w+)` \|", text, re.M))
    assert rows == {(s, k) for s, keys in KEYS.items() for k in keys}


ROOT = DOCS.parent
# a Finding(...) construction: its first argument (the call) and then the code as a string literal
FINDING_CODE = re.compile(r'(?<![\w.])Finding\(\s*([^,()]+),\s*"([a-z0-9-]+)"')
FINDING_CALL = re.compile(r"(?<![\w.])Finding\(")


def _codes_in_code() -> set[str]:
    codes: set[str] = set()
    for path in sorted((ROOT / "analyzer").rglob("*.py")):
        text = path.read_text()
        calls = [m for m in FINDING_CALL.finditer(text) if not text[: m.start()].endswith("class ")]
        found = FINDING_CODE.findall(text)
        # every construction names its code as a literal, or the regex (and this test) would miss codes
        assert len(found) == len(calls), f"{path}: a Finding(...) whose code is not a string literal"
        codes |= {code for _call, code in found}
    return codes


def test_findings_catalogue_documents_every_code():
    text = (DOCS / "findings.md").read_text()
    sections = set(re.findall(r"^## `([a-z0-9-]+)`$", text, re.M))
    overview = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.M))
    codes = _codes_in_code()
    assert len(codes) >= 20  # the regex finds the codes at all
    assert sections == codes
    assert overview == codes


def test_no_tracked_file_points_to_the_design_page():
    import subprocess

    name = "DESIGN" + ".md"  # spelled apart so this file does not mention it
    out = subprocess.run(["git", "grep", "-l", name], cwd=ROOT, capture_output=True, text=True)
    if out.returncode in (0, 1):
        assert out.stdout.split() == []
    else:  # not a git checkout (an unpacked archive): every text file under the root
        hits = [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file()
            and ".git" not in p.parts
            and p.suffix in (".py", ".md", ".toml", ".ipynb", ".txt", ".json")
            and name in p.read_text(errors="replace")
        ]
        assert hits == []


def _documented_tables() -> dict[str, set[str]]:
    text = (DOCS / "tables.md").read_text()
    out = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        name = re.match(r"`(\w+)`\n", section)
        if name:
            out[name.group(1)] = set(re.findall(r"^\| `([\w-]+)` \|", section, re.M))
    return out


def _stable_columns() -> dict[str, set[str]]:
    text = (DOCS / "tables.md").read_text()
    rows = re.findall(r"^\| (\w+) \| (.+) \|$", text.split("## Stable columns", 1)[1].split("\n## ", 1)[0], re.M)
    return {t: {c.split(" ")[0] for c in re.sub(r"\(.*?\)", "", cols).split(", ")} for t, cols in rows if t != "table"}


def test_tables_reference_names_every_table_and_column():
    from analyzer import analyze
    from tests.conftest import public_capture

    relay = ROOT / "captures" / "external-via-relay"
    runs = [
        analyze(ROOT / "captures/decrypt-relay/call.pcap", keylog=ROOT / "captures/decrypt-relay/keylog.txt"),
        analyze(sorted(relay.glob("*.pcap")), network=relay / "network.toml"),
        analyze(public_capture("ntop_nDPI/teams.pcap")),
    ]
    produced: dict[str, set[str]] = {}
    for a in runs:
        for name in a.tables:
            produced.setdefault(name, set()).update(getattr(a, name).columns)
    documented = _documented_tables()
    assert set(documented) == set(produced)
    for name, cols in produced.items():
        assert documented[name] == cols, name
    stable = _stable_columns()
    assert len(stable) == 10
    for name, cols in stable.items():
        assert cols <= produced[name], (name, cols - produced[name])
