"""One atheris (libFuzzer) campaign on one target: ``python fuzz/fuzz.py TARGET [CORPUS_DIR] [-flags]``.

Targets are in targets.py; ``python fuzz/run.py`` runs them all with sensible flags. Needs
``pip install atheris`` (not a dependency of kafkaratchet or of its test suite).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

with atheris.instrument_imports(include=["kafkaratchet", "provision", "targets"]):
    import targets

    try:  # instrument the provisioning tool too, when it is in the tree
        import provision.formats  # noqa: F401
        import provision.inputs  # noqa: F401
        import provision.rootkey  # noqa: F401
    except ImportError:
        pass


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: {sys.argv[0]} TARGET [libFuzzer args]; targets: {', '.join(targets.TARGETS)}")
    name = sys.argv[1]
    target = targets.TARGETS[name]
    for seed in targets.seeds(name):  # warm up: the world, the stub node, lazy imports, outside the clock
        target(seed)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
