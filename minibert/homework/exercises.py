"""The points table, exercises/points.json: which exercises exist, their section, points and tests.

JSON rather than TOML: tomllib only comes with Python 3.11, and minibert runs on 3.10.
{"exercises": [{"name": "attention_kernel", "section": "embeddings", "points": 10, "timeout": 120,
                "tests": ["tests/test_fast_path.py::test_textbook_kernel_is_the_formula_by_hand", ...]}, ...]}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

POINTS_FILE = Path("exercises") / "points.json"
MUTATIONS_FILE = Path("exercises") / "mutations.json"  # holds solution lines: never copied to students


@dataclass(frozen=True)
class Exercise:
    name: str
    section: str        # a lecture section's pytest marker; the text is exercises/<section>.md
    points: float
    tests: tuple[str, ...]  # pytest node ids, relative to the repository
    timeout: float = 120.0  # seconds for all of its tests together

    @property
    def text(self) -> str:
        return f"exercises/{self.section}.md"


def load_exercises(root: str | Path) -> dict[str, Exercise]:
    """{name: Exercise} from ROOT/exercises/points.json, in the table's order."""
    path = Path(root) / POINTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no points table at {path}; give the root of a minibert repository or of a "
                                f"student copy made by `python -m minibert.homework make`.")
    exercises = {}
    for entry in json.loads(path.read_text(encoding="utf-8"))["exercises"]:
        exercise = Exercise(entry["name"], entry["section"], float(entry["points"]), tuple(entry["tests"]),
                            float(entry.get("timeout", 120)))
        if exercise.name in exercises:
            raise ValueError(f"{path}: the exercise {exercise.name!r} is listed twice; names must be unique.")
        exercises[exercise.name] = exercise
    return exercises
