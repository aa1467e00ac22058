"""``python -m medsynth.bundle_templates [--check] [--repo DIR]``: render the GAN bundles' shared configs."""

from __future__ import annotations

import argparse
import sys

from medsynth.bundle_templates import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsynth.bundle_templates", description=__doc__)
    parser.add_argument("--repo", default=".", help="the repository root (default: the working directory)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    problems = generate(args.repo, write=not args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
