"""Issue 21: no string from a packet or a file name reaches the terminal raw. The crafted capture
(tests/robust/hostile.py) carries ESC[2J, OSC title sequences, BEL, a C1 CSI, SGR codes and rich
markup in USERNAME, SOFTWARE, REALM, NONCE, the DTLS SNI, the RTCP CNAME and its file name; the exact
output bytes of every command are checked."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.report.console import printable, safe_markup
from tests.robust.hostile import EVIL, FILE_NAME, write

# what a terminal acts upon: C0 controls but newline, DEL, and C1 controls (U+0080-U+009F in UTF-8)
RAW = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")
SHOWN = "\\x1b[2J\\x1b]0;pwned\\a\\x1b[31m[red]red[/red]\\x9b1m\\x7f"  # EVIL as printable() shows it


def _run(args: list[str]) -> tuple[bytes, bytes]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    return result.stdout_bytes, result.stderr_bytes


def _clean(out: bytes) -> None:
    found = RAW.findall(out)
    assert not found, f"raw control bytes on the terminal: {found[:8]}"


def test_printable_shows_controls_as_wireshark_does():
    assert printable(EVIL) == SHOWN
    assert printable("a\tb\nc\rd\x00\x1f\u202eé") == "a\\tb\\nc\\rd\\x00\\x1f\\u202eé"
    assert safe_markup("[red]x\x1b") == "\\[red]x\\x1b"


@pytest.mark.parametrize(
    "args",
    [["analyze"], ["analyze", "-v"], ["ice"], ["summary"]],
    ids=lambda a: " ".join(a),
)
def test_console_commands_print_no_raw_controls(tmp_path, args):
    p = write(tmp_path)
    out, err = _run([*args, "--no-progress", str(p)])
    _clean(out)
    _clean(err)
    text = out.decode()
    if args[0] != "ice":  # the file name, shown escaped, its markup shown as text, not applied
        assert printable(FILE_NAME) in text and "[bold]x.pcap" in text
    if args[0] == "ice" or "-v" in args:
        assert f"ICE session 0: {SHOWN}:pb" in text  # the USERNAME's ufrags, escaped, in the session title
    if args[0] == "analyze":
        assert f"Participants: \n{SHOWN}: customer" in text  # the ufrag naming a participant


def test_json_outputs_stay_json_with_the_real_values(tmp_path):
    p = write(tmp_path)
    out, _ = _run(["summary", "--json", "--no-progress", str(p)])
    _clean(out)
    assert json.loads(out)["file"] == str(p)
    out, _ = _run(["ice", "--json", "--no-progress", str(p)])
    _clean(out)
    doc = json.loads(out)
    assert doc["sessions"][0]["ufrags"] == EVIL + ":pb"  # the real value, escaped by JSON alone
    assert doc["candidates"][0]["agent"] == EVIL


def test_other_commands_echo_file_names_escaped(tmp_path):
    p = write(tmp_path)
    out_html = tmp_path / "t\x1b]0;x\x07.html"
    out, err = _run(["timeline", "--no-progress", "-o", str(out_html), str(p)])
    _clean(out)
    _clean(err)
    assert err.decode().strip() == f"wrote {printable(out_html)}"  # written files are named on stderr
    bad = tmp_path / "p\x1b[2J.toml"
    bad.write_text('[capture]\npoint = "not an address \x1b[2J"\n'.replace("\x1b", "\\u001b"))
    out, err = _run(["profile", str(bad)])
    _clean(out)
    _clean(err)
    missing = tmp_path / "gone\x1b[2J.pcap"
    missing.write_bytes(b"not a capture at all, not even close to one")
    out, err = _run(["analyze", "--no-progress", str(missing)])
    _clean(out)
    _clean(err)
    assert printable(missing) in err.decode()
