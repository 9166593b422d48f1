"""Solution regions: the lines between nbgrader's markers, each tied to an exercise by name.

A region is marked in the reference code by two comment lines of their own, at the indentation of the code
they enclose, the BEGIN line naming its exercise (a name of exercises/points.json); without the `|`:

    |    ### BEGIN SOLUTION attention_kernel
    |    scores = q @ k.transpose(-2, -1)
    |    ...
    |    ### END SOLUTION

An exercise may have several regions (in one file or several). In a student copy a region becomes one line at
the BEGIN line's indentation, `raise NotImplementedError("exercise <name>: see exercises/<section>.md")`,
and nothing of what was between the markers (code, comments, docstring lines) remains. In notebooks the
markers work the same way inside a code cell. A BEGIN inside a region, an END without a BEGIN, a region never
closed, or a BEGIN without a name is an error naming the file and the line.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?:[ \t]+(?P<name>\S+))?[ \t]*$")
END = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")


class MarkerError(ValueError):
    """Solution markers that do not pair up; the message names the file and the line."""


@dataclass(frozen=True)
class Region:
    where: str            # the file (and notebook cell) it is in
    name: str             # the exercise
    begin: int            # line of the BEGIN marker, from 1
    end: int              # line of the END marker
    indent: str
    lines: tuple[str, ...]  # the solution: the lines between the markers, without line ends


def has_markers(text: str) -> bool:
    return any(BEGIN.match(line) or END.match(line) for line in text.splitlines())


def find_regions(lines: list[str], where: str) -> list[Region]:
    """The regions of a file given as its lines (without line ends)."""
    regions, open_at, name, indent = [], None, "", ""
    for number, line in enumerate(lines, start=1):
        if (begin := BEGIN.match(line)) is not None:
            if open_at is not None:
                raise MarkerError(f"{where}:{number}: BEGIN SOLUTION inside the region that begins at line "
                                  f"{open_at}; regions cannot nest: close the first with END SOLUTION.")
            if not begin["name"]:
                raise MarkerError(f"{where}:{number}: BEGIN SOLUTION needs the exercise's name after it, "
                                  f"as in `### BEGIN SOLUTION attention_kernel` (a name of exercises/points.json).")
            open_at, name, indent = number, begin["name"], begin["indent"]
        elif END.match(line):
            if open_at is None:
                raise MarkerError(f"{where}:{number}: END SOLUTION without a BEGIN SOLUTION before it.")
            regions.append(Region(where, name, open_at, number, indent, tuple(lines[open_at:number - 1])))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{where}:{open_at}: BEGIN SOLUTION {name} is never closed; add `### END SOLUTION` "
                          f"after its last line.")
    return regions


def stub(name: str, text: str) -> str:
    """The line a student gets in place of a region (without indentation)."""
    return f'raise NotImplementedError("exercise {name}: see {text}")'


def replace_regions(lines: list[str], where: str, stub_for: Callable[[str], str | None]) -> list[str]:
    """The lines with each region replaced: by its stub when `stub_for(name)` gives one (the text to point to),
    else by its solution alone (the markers dropped, for exercises that are not handed out)."""
    out, position = [], 0
    for region in find_regions(lines, where):
        out += lines[position:region.begin - 1]
        text = stub_for(region.name)
        out += [region.indent + stub(region.name, text)] if text is not None else list(region.lines)
        position = region.end
    return out + lines[position:]
