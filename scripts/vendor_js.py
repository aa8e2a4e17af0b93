#!/usr/bin/env python3
"""Fetch pinned front-end files from the npm registry and check their published integrity.

Vendored JavaScript is never copied by hand: change a version in PINS, run this script, commit
its output. The registry's sha512 integrity of each tarball is checked against the pinned value
before anything is written, so a changed or corrupted package cannot slip in.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "relisten" / "static" / "vendor"
# Test-only files (never served by the app) live beside the browser tests.
TEST_DEST = ROOT / "tests" / "browser" / "vendor"


@dataclass(frozen=True)
class Pin:
    package: str
    version: str
    integrity: str  # npm's dist.integrity (sha512, base64)
    files: dict[str, str]  # path inside the tarball -> file name under `dest`
    dest: Path = DEST


PINS = [
    Pin(
        package="htmx.org",
        version="2.0.11",
        integrity="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        files={"package/dist/htmx.min.js": "htmx-2.0.11.min.js",
               "package/LICENSE": "htmx-LICENSE.txt"},
    ),
    Pin(
        # Resumable file uploads from the session page (the tus 1.0.0 protocol our server speaks).
        package="tus-js-client",
        version="4.3.1",
        integrity="sha512-ZLeYmjrkaU1fUsKbIi8JML52uAocjEZtBx4DKjRrqzrZa0O4MYwT6db+oqePlspV+FxXJAyFBc/L5gwUi2OFsg==",
        files={"package/dist/tus.min.js": "tus-js-client-4.3.1.min.js",
               "package/LICENSE": "tus-js-client-LICENSE.txt"},
    ),
    Pin(
        # The accessibility checker the browser tests inject; not part of the app.
        package="axe-core",
        version="4.14.1",
        integrity="sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ==",
        files={"package/axe.min.js": "axe-4.14.1.min.js", "package/LICENSE": "axe-LICENSE.txt"},
        dest=TEST_DEST,
    ),
]


def _tarball_url(pin: Pin) -> str:
    name = pin.package.split("/")[-1]
    return f"https://registry.npmjs.org/{pin.package}/-/{name}-{pin.version}.tgz"


def _check_integrity(pin: Pin, data: bytes) -> None:
    algorithm, _, expected = pin.integrity.partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"{pin.package}: only sha512 integrity is supported")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise SystemExit(f"{pin.package}@{pin.version}: integrity mismatch, refusing to write")


def _without_source_map(target: str, data: bytes) -> bytes:
    """Drop `//# sourceMappingURL=` lines: the maps are not shipped, and collectstatic's
    manifest refuses a JavaScript file that names a missing map."""
    if not target.endswith(".js"):
        return data
    lines = data.split(b"\n")
    return b"\n".join(line for line in lines if not line.startswith(b"//# sourceMappingURL="))


def vendor(pin: Pin) -> None:
    with urllib.request.urlopen(_tarball_url(pin), timeout=60) as response:  # noqa: S310
        data = response.read()
    _check_integrity(pin, data)
    pin.dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for inner, target in pin.files.items():
            member = archive.extractfile(inner)
            if member is None:
                raise SystemExit(f"{pin.package}: {inner} missing from the tarball")
            (pin.dest / target).write_bytes(_without_source_map(target, member.read()))
            print(f"wrote {pin.dest.relative_to(ROOT) / target}")


def main() -> int:
    for pin in PINS:
        vendor(pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
