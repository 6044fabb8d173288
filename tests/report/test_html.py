"""The HTML report: self-contained, every packet string escaped, the sections and figures present; the
CLI's `timeline` and `analyze --html/--json/--parquet`."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pandas as pd
import pytest
from click.testing import CliRunner
from plotly.offline import get_plotlyjs

from analyzer.cli import main
from analyzer.report.html import render, table_html
from tests.report.build import REALM_HTML, USERNAME_HTML, XSS
from tests.report.conftest import BASE_TABLES, Limited

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def page(scenario):
    return render(scenario)


def scripts(text: str) -> list[str]:
    return re.findall(r"<script[^>]*>(.*?)</script>", text, flags=re.S)


def test_packet_strings_are_escaped(page):
    assert XSS not in page
    assert ESCAPED in page  # the SOFTWARE value shown as text (stun and allocations tables)
    assert "&lt;i&gt;ca&lt;/i&gt;" in page and USERNAME_HTML not in page  # USERNAME, agent names
    assert REALM_HTML not in page and "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<b>user</b>" not in page and "&lt;b&gt;user&lt;/b&gt;" in page
    assert "onerror=alert(2)>" not in page


def test_only_the_pages_own_scripts_and_they_are_pinned_by_hash(page):
    found = scripts(page)
    assert len(found) == 2 and page.count("<script") == 2
    assert found[0] == get_plotlyjs()  # plotly.js inlined, once
    assert found[1].startswith("(function(){var cfg=") and found[1].count("_plot(\"fig-") == 3
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    hashes = re.findall(r"'sha256-([^']+)'", csp)
    assert hashes == [base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in found]
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp


def test_self_contained(page):
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?(https?:)?//""", page)
    assert "cdn.plot.ly" not in page.split("</script>", 1)[1]  # nothing after plotly.js points to a CDN


def test_sections_and_figures(page, scenario):
    for heading in ("Verdict", "Findings", "Timeline", "Ladder", "Media path", "Tables"):
        assert f"<h2>{heading}</h2>" in page
    assert page.count('class="figure"') == 3 and "figure-error" not in page.replace(".figure-error", "")
    for div in ("fig-timeline", "fig-ladder", "fig-path_diagram"):
        assert f'<div id="{div}" class="figure"></div>' in page
    for name in scenario.tables:
        n = len(getattr(scenario, name))
        if n == 0:
            assert f'<p class="muted">{name}: no rows</p>' in page and f"<summary>{name} " not in page
        else:
            assert f"<summary>{name} ({'1 row' if n == 1 else f'{n:,} rows'})</summary>" in page
    assert "intranet-direct" in page  # the verdict
    # the figure JSON carries the escaped text, with < > / as \u escapes on top
    assert "SOFTWARE: &lt;script&gt;alert(1)&lt;\\u002fscript&gt;" in scripts(page)[1]


def test_report_without_the_topology_and_media_stages(scenario):
    page = render(Limited(scenario, BASE_TABLES))
    assert "The topology stage is not available" in page and "Findings are not available" in page
    assert page.count('class="figure"') == 3 and XSS not in page


def test_findings_rendered_with_evidence(ntop_stun):
    page = render(ntop_stun)
    assert '<div class="finding warning"><div><span class="sev">warning</span>' in page
    assert "non-cloud-relay, call 1" in page and "<b>Evidence:</b> selected path 192.168.12.169:38123" in page
    assert "<b>Frames:</b> 152, 158, 160" in page


def test_table_html_escapes_and_formats():
    df = pd.DataFrame({"<th>": ["<td>&", None], "n": pd.array([1, None], dtype="Int64"),
                       "frames": [[1, 2], []], "ts": pd.to_datetime([0, 1], unit="s", utc=True)})
    out = table_html(df)
    assert "<th>&lt;th&gt;</th>" in out and "<td>&lt;td&gt;&amp;</td>" in out
    assert "<td>1, 2</td>" in out and "<td>1970-01-01T00:00:00+00:00</td>" in out
    assert out.count("<td></td>") == 3  # None, <NA>, the empty list
    assert "first 1 of 2 rows" in table_html(df, max_rows=1)


def test_cli_timeline_writes_the_figure_alone(scenario_path, tmp_path):
    out = tmp_path / "timeline.html"
    r = CliRunner().invoke(main, ["timeline", str(scenario_path), "-o", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.count('class="figure"') == 1 and len(scripts(text)) == 2 and XSS not in text
    assert '"name":"STUN\\u002fTURN unanswered"' in text


def test_cli_analyze_writes_html_json_and_parquet(scenario_path, tmp_path):
    args = ["analyze", str(scenario_path), "--no-progress", "--html", str(tmp_path / "r.html"),
            "--json", str(tmp_path / "a.json"), "--parquet", str(tmp_path / "pq")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert ESCAPED in (tmp_path / "r.html").read_text()
    assert json.loads((tmp_path / "a.json").read_text())["tables"]["stun"][0]["software"] == XSS
    assert (tmp_path / "pq" / "stun.parquet").exists()
