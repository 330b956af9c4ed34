#!/usr/bin/env python
"""Download here the wheels the offline GPU image lacks and split them into bundles that fit one device call.

    python bench/gpu/wheels.py                  # download into bench/.cache/gpu/wheels, pack bench/.cache/gpu/bundle-*
    python bench/gpu/wheels.py --resolve        # ask pip's resolver (image versions pinned) what is missing
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "bench" / ".cache" / "gpu"
MIB = 1 << 20
PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
            *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                          "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "any")
              for a in ("--platform", p)]]
# What the GPU image already has, pinned for the resolver (device/KINDS.md: torch 2.11.0+cu130, Python 3.12.3).
IMAGE_PINS = ["torch==2.11.0", "transformers==5.17.0", "accelerate==1.15.0", "numpy==2.5.2", "huggingface-hub==1.33.0",
              "safetensors==0.8.0", "tokenizers==0.23.2", "triton==3.6.0", "torchvision==0.26.0",
              "sentencepiece==0.2.2"]
# Names the image holds (KINDS.md's package list, the ones these wheels ask for): never downloaded.
IMAGE_HAS = {"torch", "transformers", "accelerate", "peft", "numpy", "huggingface-hub", "safetensors", "tokenizers",
             "triton", "torchvision", "sentencepiece", "pyarrow", "pandas", "filelock", "fsspec", "requests", "httpx",
             "tqdm", "xxhash", "packaging", "pyyaml", "jinja2", "aiohttp", "psutil", "protobuf", "wheel", "rich",
             "typer", "click", "pillow", "regex", "typing-extensions", "einops", "certifi", "idna", "urllib3",
             "charset-normalizer", "markdown-it-py", "pygments", "mdurl", "shellingham", "anyio", "httpcore", "h11",
             "sympy", "networkx", "mpmath", "setuptools", "python-dateutil", "six", "aiosignal", "frozenlist",
             "multidict", "yarl", "propcache", "attrs", "aiohappyeyeballs", "hf-xet", "zipp", "annotated-doc",
             "nvidia-ml-py", "cuda-bindings", "cuda-pathfinder", "importlib-metadata"}
# The packages the GPU path needs beyond the image, and their own missing needs (found with --resolve,
# 2026-11-25). xformers is optional for Unsloth (it falls back to PyTorch SDPA) and left out.
WHEELS = ["unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "trl==1.15.0", "datasets==4.8.5", "bitsandbytes==0.50.2",
          "dill", "multiprocess", "tyro", "docstring-parser", "typeguard", "shtab", "msgspec", "hf_transfer",
          "torchao", "cut_cross_entropy", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
          "json5", "nest-asyncio", "structlog", "diffusers"]


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def resolve(roots: list[str]) -> list[str]:
    """`name==version` of every package pip's resolver would add to the image for `roots` (metadata only)."""
    pins = CACHE / "image-pins.txt"
    pins.parent.mkdir(parents=True, exist_ok=True)
    pins.write_text("\n".join(IMAGE_PINS) + "\n")
    report = CACHE / "resolve-report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--target",
           str(CACHE / "resolve-none"), *PLATFORM, "-c", str(pins), "--report", str(report), *roots]
    subprocess.run(cmd, check=True)
    items = json.loads(report.read_text())["install"]
    return sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items
                  if norm(i["metadata"]["name"]) not in IMAGE_HAS)


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
    ap.add_argument("--resolve", action="store_true",
                    help="print what pip's resolver would add to the image for unsloth/trl/datasets/bitsandbytes "
                         "(image versions pinned), then exit")
    ap.add_argument("--max-mib", type=float, default=56.0,
                    help="largest bundle in MiB (each device call carries one bundle plus the working tree, 64 MiB "
                         "in all)")
    ap.add_argument("--out", default=str(CACHE), help="where wheels/ and bundle-*/ go (an ignored folder)")
    ap.add_argument("--extra", nargs="*", default=[], help="more requirement specs to carry, e.g. xformers==0.0.35")
    args = ap.parse_args(argv)
    if args.resolve:
        print("\n".join(resolve(WHEELS[:5] + args.extra)))
        return 0
    out = Path(args.out)
    wheels = out / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)  # one version of each: two would stop the whole install there
    files = download(WHEELS + args.extra, wheels)
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
