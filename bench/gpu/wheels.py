#!/usr/bin/env python
"""Download here the wheels the offline GPU image lacks and split them into bundles that fit one device call.

    python bench/gpu/wheels.py                  # download into bench/.cache/gpu/wheels, pack bench/.cache/gpu/bundle-*
    python bench/gpu/wheels.py --check          # which needs of the downloaded wheels nothing meets
    python bench/gpu/wheels.py --max-mib 40     # smaller bundles (each device call carries one, <= 64 MiB)

Why: the GPU machine (Python 3.12, torch 2.11 + CUDA, transformers 5.17.0, accelerate, peft,
pyarrow, pandas, ...) cannot reach PyPI, and each call carries at most 64 MiB with the working
tree. unsloth (28.6 MB) and bitsandbytes (43 MB) alone exceed one bundle, so the wheels are packed
first-fit-decreasing into bundles under --max-mib (default 56: the tree itself needs room). A
wheel larger than a bundle (xformers, if you add it) is cut into parts that travel in separate
calls and are joined again by install.py before pip sees them (the machine keeps /tmp between
calls while it stays warm; the runner checks every part's size and the whole wheel's sha256).
Each bundle folder holds a manifest.json; bench/gpu/install.py installs a bundle with
`pip install --no-index --no-deps --target`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / ".cache" / "gpu"
MIB = 1 << 20
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                          "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "any")
              for a in ("--platform", p)]]
# Names the image holds (KINDS.md's package list, the ones these wheels ask for): never downloaded.
IMAGE_HAS = {"torch", "transformers", "accelerate", "peft", "numpy", "huggingface-hub", "safetensors", "tokenizers",
             "triton", "torchvision", "sentencepiece", "pyarrow", "pandas", "filelock", "fsspec", "requests", "httpx",
             "tqdm", "xxhash", "packaging", "pyyaml", "jinja2", "aiohttp", "psutil", "protobuf", "wheel", "rich",
             "typer", "click", "pillow", "regex", "typing-extensions", "einops", "certifi", "idna", "urllib3",
             "charset-normalizer", "markdown-it-py", "pygments", "mdurl", "shellingham", "anyio", "httpcore", "h11",
             "sympy", "networkx", "mpmath", "setuptools", "python-dateutil", "six", "aiosignal", "frozenlist",
             "multidict", "yarl", "propcache", "attrs", "aiohappyeyeballs", "hf-xet", "zipp", "annotated-doc",
             "nvidia-ml-py", "cuda-bindings", "cuda-pathfinder"}
# The packages the GPU path needs beyond the image, and their own needs the image lacks (from the wheels'
# Requires-Dist, see --check; 2026-11-25). xformers: Unsloth imports it only if present (else PyTorch SDPA).
WHEELS = ["unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "trl==1.15.0", "datasets==4.8.5", "bitsandbytes==0.50.2",
          "dill", "multiprocess", "tyro", "docstring-parser", "typeguard", "shtab", "msgspec", "hf_transfer",
          "torchao", "cut_cross_entropy", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "json5", "nest-asyncio", "structlog", "diffusers", "importlib-metadata", "lazy-importer"]
OPTIONAL = ("xformers", "torchvision", "triton-windows", "mlx", "mlx-lm", "mlx-vlm")


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that apply on the GPU machine (Linux x86_64, CPython 3.12, no extras)."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        lines = zf.read(meta).decode("utf-8", "replace").splitlines()
    env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
    out = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.marker is None or req.marker.evaluate(env):
            out.append(str(req))
    return out


def missing(wheels: list[Path], optional: tuple[str, ...] = OPTIONAL) -> list[str]:
    """Requirements of `wheels` that neither the image (IMAGE_HAS) nor another carried wheel provides,
    or that a carried wheel provides in a version outside the specifier."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    have = {}
    for w in wheels:
        name, version = w.name.split("-")[:2]
        have[norm(name)] = Version(version)
    out = []
    for w in wheels:
        for spec in requirements(w):
            req = Requirement(spec)
            name = norm(req.name)
            if name in IMAGE_HAS or name in optional:
                continue
            if name not in have:
                out.append(f"{w.name}: needs {spec} (not in the image, not carried)")
            elif req.specifier and have[name] not in req.specifier:
                out.append(f"{w.name}: needs {spec}, carried {name} {have[name]}")
    return sorted(set(out))


def download(specs: list[str], dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *PLATFORM, "-d", str(dest),
                    *specs], check=True)
    return sorted(dest.glob("*.whl"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MIB):
            h.update(chunk)
    return h.hexdigest()


def pack(files: list[Path], max_bytes: int) -> list[list[tuple[str, Path, int, int]]]:
    """Bundles of (name, source file, offset, length) pieces, first-fit decreasing, each under max_bytes.

    A file larger than max_bytes is cut into parts of at most max_bytes, each placed like any other piece."""
    pieces: list[tuple[str, Path, int, int]] = []
    for f in files:
        size = f.stat().st_size
        if size <= max_bytes:
            pieces.append((f.name, f, 0, size))
        else:
            n = -(-size // max_bytes)
            pieces += [(f"{f.name}.part{i:02d}of{n:02d}", f, i * max_bytes, min(max_bytes, size - i * max_bytes))
                       for i in range(n)]
    bins: list[list[tuple[str, Path, int, int]]] = []
    free: list[int] = []
    for piece in sorted(pieces, key=lambda p: (-p[3], p[0])):
        k = next((i for i, room in enumerate(free) if piece[3] <= room), None)
        if k is None:
            bins.append([])
            free.append(max_bytes)
            k = len(bins) - 1
        bins[k].append(piece)
        free[k] -= piece[3]
    return bins


def write_bundles(files: list[Path], out: Path, max_bytes: int) -> list[Path]:
    """bundle-1, bundle-2, ... under `out`, each with its pieces and a manifest.json; returns the folders."""
    for old in out.glob("bundle-*"):
        shutil.rmtree(old)
    split = {f.name: {"size": f.stat().st_size, "sha256": sha256(f)} for f in files if f.stat().st_size > max_bytes}
    folders = []
    bins = pack(files, max_bytes)
    for i, pieces in enumerate(bins, 1):
        folder = out / f"bundle-{i}"
        folder.mkdir(parents=True)
        entries = []
        for name, src, offset, length in pieces:
            with open(src, "rb") as fi, open(folder / name, "wb") as fo:
                fi.seek(offset)
                fo.write(fi.read(length))
            entries.append({"file": name, "bytes": length, "wheel": src.name, "offset": offset})
        manifest = {"bundle": i, "of": len(bins), "files": entries,
                    "split_wheels": {k: v for k, v in split.items() if any(e["wheel"] == k for e in entries)}}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="only check the wheels already downloaded: list needs nothing carried or in the image meets")
    ap.add_argument("--max-mib", type=float, default=56.0,
                    help="largest bundle in MiB (each device call carries one bundle plus the working tree, 64 MiB "
                         "in all)")
    ap.add_argument("--out", default=str(CACHE), help="where wheels/ and bundle-*/ go (an ignored folder)")
    ap.add_argument("--extra", nargs="*", default=[], help="more requirement specs to carry, e.g. xformers==0.0.35")
    args = ap.parse_args(argv)
    out = Path(args.out)
    wheels = out / "wheels"
    if args.check:
        gaps = missing(sorted(wheels.glob("*.whl")))
        print("\n".join(gaps) or "every requirement is met by the image or a carried wheel")
        return 1 if gaps else 0
    if wheels.exists():
        shutil.rmtree(wheels)  # one version of each: two would stop the whole install there
    files = download(WHEELS + args.extra, wheels)
    for gap in missing(files):
        print(f"warning: {gap}", file=sys.stderr)
    folders = write_bundles(files, out, int(args.max_mib * MIB))
    for f in folders:
        m = json.loads((f / "manifest.json").read_text())
        size = sum(e["bytes"] for e in m["files"])
        print(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}: {len(m['files'])} files, {size / MIB:.1f} MiB")
    print(f"{len(files)} wheels, {sum(p.stat().st_size for p in files) / MIB:.1f} MiB in {len(folders)} bundles; "
          "see bench/gpu/README.md for the device commands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
