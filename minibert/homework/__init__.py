"""Homework from the reference code: solution regions, a student copy, a grader and a mutation check.

The course (issue 23); the exercises are described in exercises/<section>.md, scored by exercises/points.json.
- regions.py: find the regions between nbgrader-style markers and turn them into stubs;
- make.py: `python -m minibert.homework make OUT`: a student copy of the repository;
- grade.py: `python -m minibert.homework grade [PATH]`: points per exercise, one pytest process each;
- mutants.py: `python -m minibert.homework mutants`: every plausible mistake must fail its exercise's tests.
"""
from .exercises import Exercise, load_exercises
from .regions import MarkerError, Region

__all__ = ["Exercise", "MarkerError", "Region", "load_exercises"]
