"""The Debian packages symcnn needs, read from the one list (.ci/debian-packages, shipped in the wheel as
symcnn/debian-packages): the README, .ci/run, `symcnn doctor` and the error messages all name these."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

LIST_ENV = "SYMCNN_DEBIAN_PACKAGES"  # another list file (the packaging test removes a package this way)


@dataclass(frozen=True)
class Package:
    name: str
    feature: str  # "pdf" or "tests"
    gives: str  # what it provides, e.g. "pdflatex, LaTeX"


def list_path() -> Path:
    if os.environ.get(LIST_ENV):
        return Path(os.environ[LIST_ENV])
    packaged = resources.files("symcnn") / "debian-packages"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / ".ci" / "debian-packages"  # a source checkout


def debian_packages(feature: str | None = None) -> list[Package]:
    """The list's packages in order, those of one ``feature`` when given. A line is
    ``package  # feature: what it gives``; lines starting with # are comments."""
    packages = []
    for line in list_path().read_text(encoding="utf-8").splitlines():
        name, _, comment = line.partition("#")
        if not name.strip():
            continue
        tag, _, gives = comment.partition(":")
        packages.append(Package(name.strip(), tag.strip(), gives.strip()))
    return [p for p in packages if feature is None or p.feature == feature]


def apt_line(names: list[str] | None = None, feature: str | None = None) -> str:
    """``apt-get install -y --no-install-recommends ...`` of ``names`` (each must be in the list), or of
    a feature's packages."""
    known = [p.name for p in debian_packages()]
    if names is None:
        names = [p.name for p in debian_packages(feature)]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"not in {list_path()}: {', '.join(unknown)}")
    return "apt-get install -y --no-install-recommends " + " ".join(names)
