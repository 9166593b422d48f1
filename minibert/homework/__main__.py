"""`python -m minibert.homework make | grade | mutants`: build, grade and check the course's homework.

  make OUT [--sections embeddings pretraining ...]   a student copy of this repository in OUT (a new folder)
  grade [PATH] [--json] [--only NAME ...] [--reference REPO]   points per exercise of the copy at PATH (default: .)
  mutants [--only ID ...]                            every mistake of exercises/mutations.json fails its tests
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..resources import REPO_ROOT
from .grade import grade, print_grades
from .make import make_copy
from .mutants import run_mutants
from .regions import MarkerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minibert.homework", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    make = commands.add_parser("make", help="write a student copy: each solution region becomes a stub")
    make.add_argument("out", type=Path, help="the new folder (it must not exist)")
    make.add_argument("--sections", nargs="+", help="hand out only these sections' exercises (default: all)")
    make.add_argument("--source", type=Path, default=REPO_ROOT, help="the reference repository (default: this one)")
    marks = commands.add_parser("grade", help="run a copy's tests per exercise and print the points")
    marks.add_argument("path", nargs="?", type=Path, default=Path("."), help="the copy (default: .)")
    marks.add_argument("--json", action="store_true", help="print a gradebook entry as JSON")
    marks.add_argument("--only", nargs="+", metavar="NAME", help="grade only these exercises")
    marks.add_argument("--timeout", type=float, help="seconds per exercise (default: the points table's)")
    marks.add_argument("--reference", type=Path, metavar="REPO",
                       help="grade with REPO's tests and points table, not the copy's own (e.g. this repository)")
    mutants = commands.add_parser("mutants", help="check that every listed mistake fails its exercise's tests")
    mutants.add_argument("--only", nargs="+", metavar="ID", help="only these mutations")
    mutants.add_argument("--source", type=Path, default=REPO_ROOT, help="the reference repository")
    mutants.add_argument("--no-baseline", action="store_true",
                         help="skip the check that the unchanged reference passes each mutant's tests")
    args = parser.parse_args(argv)
    try:
        if args.command == "make":
            copy = make_copy(args.source, args.out, args.sections)
            print(f"wrote {copy.files} files to {copy.out}; exercises to write: "
                  + ", ".join(f"{name} ({len(regions)} region{'s' * (len(regions) > 1)})"
                              for name, regions in copy.stubbed.items()))
            return 0
        if args.command == "grade":
            results = grade(args.path, args.only, args.timeout, args.reference)
            print_grades(args.path, results, args.json)
            return 0
        results = run_mutants(args.source, args.only, baseline=not args.no_baseline)
        missed = [r.id for r in results if not r.caught]
        print(f"{len(results) - len(missed)} of {len(results)} mutants caught"
              + (f"; NOT caught: {', '.join(missed)}" if missed else ""))
        return 1 if missed else 0
    except (MarkerError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
