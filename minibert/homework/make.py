"""`python -m minibert.homework make OUT`: a student copy of the repository, each solution region a stub.

The copy holds the files git tracks (never weights, runs or caches), read from the working tree; it is never
written over an existing folder. Every file is read and every region checked before anything is written, so a
marker error leaves nothing half made. In the copy: the regions of the chosen sections' exercises are stubs
(regions.py), the other regions keep their solution without the markers, every notebook's outputs are
cleared, the points table lists only the exercises handed out, and exercises/mutations.json (which quotes
solution lines) is left out.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .exercises import MUTATIONS_FILE, POINTS_FILE, Exercise, load_exercises
from .regions import MarkerError, Region, find_regions, has_markers, replace_regions

MARKED_SUFFIXES = (".py", ".ipynb")


@dataclass
class Copy:
    out: Path
    files: int = 0
    stubbed: dict[str, list[Region]] = field(default_factory=dict)  # exercise -> its regions, now stubs


def tracked_files(root: Path) -> list[str]:
    """The repository's tracked files that exist in the working tree, as paths relative to it."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise ValueError(f"{root} is not a git repository (git ls-files failed: {err}); make copies from a "
                         f"clone of minibert.") from err
    return [name for name in listed.stdout.split("\0") if name and (root / name).is_file()]


def notebook_regions(notebook: dict, where: str) -> list[Region]:
    return [region for number, cell in enumerate(notebook.get("cells", []), start=1) if cell["cell_type"] == "code"
            for region in find_regions(cell_lines(cell), f"{where} cell {number}")]


def cell_lines(cell: dict) -> list[str]:
    source = cell["source"]
    return ("".join(source) if isinstance(source, list) else source).split("\n")


def student_notebook(notebook: dict, where: str, stub_for) -> dict:
    """Regions replaced in every code cell, and every output and execution count cleared."""
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        if cell["cell_type"] != "code":
            continue
        text = "\n".join(replace_regions(cell_lines(cell), f"{where} cell {number}", stub_for))
        cell["source"] = text.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
    return notebook


def regions_of(root: Path, files: list[str] | None = None) -> list[Region]:
    """Every solution region of the repository at ROOT (errors name the file and line)."""
    regions = []
    for name in files if files is not None else tracked_files(root):
        if not name.endswith(MARKED_SUFFIXES):
            continue
        text = (root / name).read_text(encoding="utf-8")
        if name.endswith(".ipynb"):
            regions += notebook_regions(json.loads(text), name)
        elif has_markers(text):
            regions += find_regions(text.split("\n"), name)
    return regions


def make_copy(source: str | Path, out: str | Path, sections: list[str] | None = None) -> Copy:
    """Write the student copy of SOURCE into OUT, stubbing the exercises of `sections` (None: all)."""
    source, out = Path(source), Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; a copy is never written over a folder. Give a new path, or "
                              f"remove {out} yourself if it is an old copy.")
    exercises = load_exercises(source)
    known = sorted({exercise.section for exercise in exercises.values()})
    unknown = set(sections or []) - set(known)
    if unknown:
        raise ValueError(f"no exercises in section(s) {', '.join(sorted(unknown))}; the sections with exercises "
                         f"are {', '.join(known)}.")
    handed_out = {name: e for name, e in exercises.items() if sections is None or e.section in sections}
    files = [name for name in tracked_files(source) if Path(name) != MUTATIONS_FILE]
    regions = regions_of(source, files)
    check_regions(regions, exercises, handed_out)
    copy, contents = Copy(out), {}
    for region in regions:
        if region.name in handed_out:
            copy.stubbed.setdefault(region.name, []).append(region)
    stub_for = lambda name: handed_out[name].text if name in handed_out else None  # noqa: E731
    for name in files:
        path = source / name
        if name.endswith(".ipynb"):
            notebook = json.loads(path.read_text(encoding="utf-8"))
            contents[name] = json.dumps(student_notebook(notebook, name, stub_for), indent=1, ensure_ascii=False) + "\n"
        elif name.endswith(".py") and has_markers(text := path.read_text(encoding="utf-8")):
            contents[name] = "\n".join(replace_regions(text.split("\n"), name, stub_for))
        elif Path(name) == POINTS_FILE:  # the copy's table lists the exercises handed out, and only those
            table = json.loads(path.read_text(encoding="utf-8"))
            table["exercises"] = [entry for entry in table["exercises"] if entry["name"] in handed_out]
            contents[name] = json.dumps(table, indent=2, ensure_ascii=False) + "\n"
        else:
            contents[name] = path.read_bytes()
    out.mkdir(parents=True)
    for name, content in contents.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
        target.chmod((source / name).stat().st_mode & 0o777)
    copy.files = len(contents)
    return copy


def check_regions(regions: list[Region], exercises: dict[str, Exercise], handed_out: dict[str, Exercise]) -> None:
    """Every region names an exercise of the table, and every exercise handed out has a region."""
    for region in regions:
        if region.name not in exercises:
            raise MarkerError(f"{region.where}:{region.begin}: BEGIN SOLUTION {region.name}: no exercise of that "
                              f"name in exercises/points.json (it has {', '.join(exercises)}).")
    missing = set(handed_out) - {region.name for region in regions}
    if missing:
        raise MarkerError(f"exercise(s) {', '.join(sorted(missing))} of exercises/points.json have no "
                          f"solution region in the code; mark one with `### BEGIN SOLUTION <name>`.")
