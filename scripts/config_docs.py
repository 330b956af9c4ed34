"""Render the config keys of tiny_gpt_config.yaml and lora_config.yaml into README_TRAINING.md.

    python scripts/config_docs.py          # rewrite the tables between the markers in the README
    python scripts/config_docs.py --check  # exit 1 if the README is out of date (the tests run this)

Why: the YAML comments are the one place where each key's meaning and range is written. The
README's reference tables are generated from them, so the docs and the configs cannot drift.
A key's text is the comment block right above it plus its inline comment and any indented
comment lines that follow it; keys stacked right under one comment block point to the first.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README_TRAINING.md"
CONFIGS = ("tiny_gpt_config.yaml", "lora_config.yaml")
KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(?:\s+(.*))?$")


def _split_inline(rest: str) -> tuple[str, str]:
    """Split `value  # comment` outside quotes."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "\"'" and quote is None:
            quote = ch
        elif ch == quote:
            quote = None
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1].isspace()):
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), ""


def parse_yaml_docs(text: str) -> list[tuple[str, str, str]]:
    """(key, default as written, description) for every top-level key, in file order."""
    rows: list[tuple[str, str, str]] = []
    above: list[str] = []
    current: list | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            body = stripped.lstrip("#").strip()
            if line.startswith((" ", "\t")) and current is not None:
                current[2].append(body)  # indented comment: continues the key above
                continue
            current = None
            if body.startswith("---") or not body:
                above = []  # a section rule or blank comment ends the block
            else:
                above.append(body)
            continue
        if not stripped:
            above, current = [], None
            continue
        m = KEY_RE.match(line)
        if not m:
            continue  # a nested value line
        value, inline = _split_inline(m.group(2) or "")
        desc = above + ([inline] if inline else [])
        if not desc and current is not None and current[3]:  # keys stacked under one comment block share it
            desc = [f"See `{current[0]}`."]
        current = [m.group(1), value, desc, bool(above) and not inline]
        rows.append(current)  # type: ignore[arg-type]
        above = []
    return [(k, v, " ".join(d)) for k, v, d, _ in rows]


def render(name: str) -> str:
    rows = parse_yaml_docs((ROOT / name).read_text(encoding="utf-8"))
    out = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, value, desc in rows:
        value = value.replace("|", "\\|") or " "
        desc = desc.replace("|", "\\|")
        out.append(f"| `{key}` | `{value}` | {desc} |")
    return "\n".join(out)


def update(readme: str) -> str:
    for name in CONFIGS:
        start, end = f"<!-- config-keys:{name}:start -->", f"<!-- config-keys:{name}:end -->"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README_TRAINING.md: markers for {name} not found ({start})")
        readme = pattern.sub(lambda _m: f"{start}\n{render(name)}\n{end}", readme)
    return readme


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only check; exit 1 if the README is out of date")
    args = ap.parse_args()
    text = README.read_text(encoding="utf-8")
    new = update(text)
    if args.check:
        if new != text:
            print("README_TRAINING.md config tables are out of date: run python scripts/config_docs.py",
                  file=sys.stderr)
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
