"""`python -m minibert.homework mutants`: every plausible mistake of exercises/mutations.json must be caught.

A grader is only as good as the wrong answers it fails. Each mutation names an exercise (or, for a mistake
outside the exercises, its own tests), a file, the exact line(s) of the reference and what a student might
write instead. The reference is copied once into a scratch folder (tracked files, markers kept); each mutation
is applied there alone, the exercise's tests run (as `grade` runs them), and the file is restored. A mutant
that passes is a hole in the tests: the command lists it and exits with 1.

Lines are compared without their indentation and their trailing `  # comment`, so that a comment edited in the
reference does not break the list; the replacement takes the indentation of the first line it replaces.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .exercises import MUTATIONS_FILE, load_exercises
from .grade import run_pytest, run_tests
from .make import tracked_files

COMMENT = re.compile(r"\s+#\s.*$")


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str
    original: tuple[str, ...]
    replacement: tuple[str, ...]
    tests: tuple[str, ...]
    why: str
    exercise: str | None = None


@dataclass
class MutantResult:
    id: str
    caught: bool
    status: str     # of the tests on the mutant: failed (caught), timeout, crashed ... or passed (a hole)


def as_lines(value: str | list[str]) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) else tuple(value.split("\n"))


def load_mutations(root: str | Path) -> list[Mutation]:
    root = Path(root)
    exercises = load_exercises(root)
    mutations = []
    for entry in json.loads((root / MUTATIONS_FILE).read_text(encoding="utf-8"))["mutations"]:
        exercise = entry.get("exercise")
        if exercise is not None and exercise not in exercises:
            raise ValueError(f"{MUTATIONS_FILE}: mutation {entry['id']} names the exercise {exercise!r}, which "
                             f"exercises/points.json does not have.")
        tests = tuple(entry.get("tests") or exercises[exercise].tests)
        mutations.append(Mutation(entry["id"], entry["file"], as_lines(entry["original"]),
                                  as_lines(entry["replacement"]), tests, entry.get("why", ""), exercise))
    return mutations


def code(line: str) -> str:
    return COMMENT.sub("", line).strip()


def mutate(text: str, mutation: Mutation) -> str:
    """TEXT with the mutation's original lines (found exactly once) replaced."""
    lines, want = text.split("\n"), [code(line) for line in mutation.original]
    found = [i for i in range(len(lines) - len(want) + 1)
             if [code(line) for line in lines[i:i + len(want)]] == want]
    if len(found) != 1:
        raise ValueError(f"mutation {mutation.id}: its original line(s) occur {len(found)} times in "
                         f"{mutation.file}, not once; update exercises/mutations.json to the reference code.")
    start = found[0]
    indent = lines[start][:len(lines[start]) - len(lines[start].lstrip())]
    return "\n".join(lines[:start] + [indent + line for line in mutation.replacement] + lines[start + len(want):])


def run_mutants(root: str | Path = ".", ids: list[str] | None = None, timeout: float = 300,
                report=print, baseline: bool = True) -> list[MutantResult]:
    """Apply each mutation (or those of `ids`) to a scratch copy of ROOT and run its tests. With `baseline`,
    each set of tests first runs on the unchanged copy and must pass there, so that a broken copy (a missing
    file, absent data) cannot pass for mutants caught."""
    root = Path(root).resolve()
    mutations = load_mutations(root)
    unknown = set(ids or []) - {m.id for m in mutations}
    if unknown:
        raise ValueError(f"no mutation named {', '.join(sorted(unknown))} in {MUTATIONS_FILE}.")
    chosen = [m for m in mutations if not ids or m.id in ids]
    results = []
    with tempfile.TemporaryDirectory(prefix="minibert-mutants-") as scratch:
        for name in tracked_files(root):
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, Path(scratch) / name)
        if baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                returncode, outcomes, output = run_pytest(Path(scratch), tests, timeout)
                if returncode != 0:
                    raise RuntimeError(f"the unchanged reference does not pass {', '.join(tests)}; fix that first: "
                                       f"until then no mutant of these tests means anything. pytest said:\n"
                                       + "\n".join(output.splitlines()[-30:]))
        for mutation in chosen:
            path = Path(scratch) / mutation.file
            original = path.read_text(encoding="utf-8")
            path.write_text(mutate(original, mutation), encoding="utf-8")
            try:
                status = run_tests(Path(scratch), mutation.tests, timeout)[0]
            finally:
                path.write_text(original, encoding="utf-8")
            results.append(MutantResult(mutation.id, status != "passed", status))
            report(f"{'caught' if status != 'passed' else 'NOT CAUGHT':<11} {mutation.id:<36} "
                   f"({mutation.exercise or 'mistake'}: {status}) {mutation.why}")
    return results
