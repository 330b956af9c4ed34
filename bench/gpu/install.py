#!/usr/bin/env python3
"""Install one wheel bundle (made by bench/gpu/wheels.py) on the offline GPU machine.

    python3 bench/gpu/install.py bench/.cache/gpu/bundle-1          # then: export PYTHONPATH=/tmp/graftkit-site
    python3 bench/gpu/install.py bench/.cache/gpu/bundle-2 --check  # last bundle: also run `pip check`

Whole wheels are installed at once with `pip install --no-index --no-deps --no-compile --target`
(the image's own packages stay untouched; PYTHONPATH puts the target first). Parts of a wheel
too big for one bundle are kept in --parts until the last part arrives (a later call on the same
warm machine), then joined, checked against the size and sha256 in the manifest, and installed.
Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PART = re.compile(r"^(?P<wheel>.+\.whl)\.part(?P<i>\d+)of(?P<n>\d+)$")


def join_parts(parts_dir: Path, wheel: str, info: dict) -> Path | None:
    """The joined wheel when every part is in parts_dir (size and sha256 checked), else None."""
    parts = sorted(parts_dir.glob(f"{wheel}.part*of*"))
    if not parts:
        return None
    n = int(PART.match(parts[0].name)["n"])
    if len(parts) < n:
        return None
    out = parts_dir / wheel
    h = hashlib.sha256()
    with open(out, "wb") as fo:
        for p in parts:
            data = p.read_bytes()
            h.update(data)
            fo.write(data)
    if out.stat().st_size != info["size"] or h.hexdigest() != info["sha256"]:
        out.unlink()
        raise SystemExit(f"error: {wheel}: joined parts do not match the manifest (size or sha256); re-run wheels.py")
    return out


def install(bundle: str | Path, target: str | Path, parts_dir: str | Path, check: bool = False) -> list[str]:
    """Install the bundle's wheels (and any split wheel now complete) into `target`; returns the wheel names."""
    bundle, target, parts_dir = Path(bundle), Path(target), Path(parts_dir)
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"error: {bundle}: no manifest.json (carry a folder made by bench/gpu/wheels.py)")
    manifest = json.loads(manifest_path.read_text())
    wheels: list[Path] = []
    for entry in manifest["files"]:
        path = bundle / entry["file"]
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            raise SystemExit(f"error: {path}: missing or truncated ({entry['bytes']} bytes expected)")
        if PART.match(entry["file"]):
            parts_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, parts_dir / entry["file"])
        else:
            wheels.append(path)
    for wheel, info in manifest.get("split_wheels", {}).items():
        joined = join_parts(parts_dir, wheel, info)
        if joined is not None:
            wheels.append(joined)
        else:
            print(f"{wheel}: waiting for its other parts (next bundle, same warm machine)", flush=True)
    if wheels:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--disable-pip-version-check", "--target", str(target),
                        *map(str, wheels)], check=True)
    print(f"bundle {manifest['bundle']}/{manifest['of']}: installed {len(wheels)} wheels into {target}; "
          f"export PYTHONPATH={target}", flush=True)
    if check:  # every Requires-Dist satisfied by the target + the image? (informational)
        env_check = subprocess.run([sys.executable, "-m", "pip", "check", "--disable-pip-version-check"],
                                   capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(target)})
        print("pip check:", (env_check.stdout + env_check.stderr).strip() or "ok", flush=True)
    return [w.name for w in wheels]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="a bundle-N folder carried to this machine")
    ap.add_argument("--target", default="/tmp/graftkit-site", help="install folder to put on PYTHONPATH")
    ap.add_argument("--parts", default="/tmp/graftkit-parts", help="where parts of split wheels wait for each other")
    ap.add_argument("--check", action="store_true", help="run `pip check` with the target on PYTHONPATH afterwards")
    args = ap.parse_args(argv)
    install(args.bundle, args.target, args.parts, args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
