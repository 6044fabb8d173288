"""Which captures a fleet run covers: inputs (files, folders, globs) -> units of work, each with its content hash.

A unit is one capture file, or (group by folder) the capture files directly inside one folder, analysed
together as the capture points of one call. Its key is the sha256 of its content (of the members' names
and hashes for a group), so a copy under another name is the same unit and a rerun recognises it.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")
_GLOB_CHARS = frozenset("*?[")


class FleetInputError(ValueError):
    """An input names nothing: a missing path or a glob that matches no file."""


@dataclass(frozen=True)
class Unit:
    """One task of the fleet: `path` is the capture (or the folder of a group), `files` what analyze() reads."""

    path: str
    files: tuple[str, ...]
    sha256: str | None  # None when a member could not be read (then `error` says why)
    file_sha256: tuple[str | None, ...] = ()
    size: int = 0
    error: str | None = None
    also: tuple[str, ...] = field(default=())  # other paths with the same content in this run
    kind: str = "file"  # or "group": the capture files of one folder

    @property
    def key(self) -> str:
        """The partition name: the content hash, or for an unreadable unit a hash of its path."""
        if self.sha256 is not None:
            return self.sha256
        return "path-" + hashlib.sha256(os.fsencode(self.path)).hexdigest()

    def names(self) -> list[str]:
        """The members' names as rows cite them: the file name (relative to the group's folder)."""
        if self.kind == "file":
            return [os.path.basename(f) for f in self.files]
        return [os.path.relpath(f, self.path) for f in self.files]


def is_capture_name(name: str) -> bool:
    return name.lower().endswith(CAPTURE_SUFFIXES)


def find_captures(inputs: list[str | os.PathLike]) -> list[str]:
    """The capture files the inputs name, each once, in input order: a file as given (whatever its
    name: the user asked for it), a folder searched recursively for CAPTURE_SUFFIXES, a glob expanded."""
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(os.path.abspath(p))

    for item in map(os.fspath, inputs):
        if _GLOB_CHARS & set(item) and not os.path.exists(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise FleetInputError(f"{item}: no file matches")
            paths = matches
        elif os.path.exists(item):
            paths = [item]
        else:
            raise FleetInputError(f"{item}: no such file or folder")
        for p in paths:
            if os.path.isdir(p):
                for f in sorted(Path(p).rglob("*")):
                    if f.is_file() and is_capture_name(f.name):
                        add(str(f))
            elif os.path.isfile(p):
                add(p)
    return out


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _hash_or_error(path: str) -> tuple[str | None, int, str | None]:
    try:
        return file_sha256(path), os.path.getsize(path), None
    except OSError as e:
        return None, 0, f"{path}: {e.strerror or e}"


def plan_units(files: list[str], *, group_by_folder: bool = False) -> list[Unit]:
    """Hash the files and form the units; a unit whose content was already seen in this run is folded into
    the first one (its path goes to `also`)."""
    if group_by_folder:
        groups: dict[str, list[str]] = {}
        for f in files:
            groups.setdefault(os.path.dirname(f), []).append(f)
        raw = []
        for folder, members in groups.items():
            members = sorted(members)
            hashed = [_hash_or_error(m) for m in members]
            errors = [e for _h, _s, e in hashed if e]
            digest = None
            if not errors:
                h = hashlib.sha256()
                for m, (fh, _s, _e) in zip(members, hashed, strict=True):
                    h.update(f"{os.path.relpath(m, folder)}\t{fh}\n".encode())
                digest = h.hexdigest()
            raw.append(
                Unit(
                    folder,
                    tuple(members),
                    digest,
                    tuple(h for h, _s, _e in hashed),
                    sum(s for _h, s, _e in hashed),
                    errors[0] if errors else None,
                    kind="group",
                )
            )
    else:
        raw = []
        for f in files:
            digest, size, err = _hash_or_error(f)
            raw.append(Unit(f, (f,), digest, (digest,), size, err))
    units: dict[str, Unit] = {}
    for u in raw:
        first = units.get(u.key)
        if first is None:
            units[u.key] = u
        else:
            units[u.key] = replace(first, also=(*first.also, u.path))
    return list(units.values())
