"""Token-length report: will these samples fit the model you are about to fine-tune?

`--tokenizer` accepts three things, tried in this order:
- a local Hugging Face tokenizer folder (AutoTokenizer, local files only); when it has a chat
  template, each sample is rendered with it, exactly what the trainer will see;
- a `tokenizer.json` file of the `tokenizers` library (the tiny GPT's BPE tokenizer): samples are
  rendered as graftkit.corpus transcripts with the speaker markers;
- a tiktoken encoding name (`cl100k_base`, `o200k_base`, `gpt2`, ...): `role: text` lines.
tiktoken downloads its encodings on first use; we print the address, bound the download by
`GRAFTKIT_FETCH_TIMEOUT` seconds (default 30) and, offline or uncached, stop with one clear line
that points to local alternatives: a network that accepts connections but never answers used to
hang here with no output.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..corpus import render_session
from ..errors import UserError, first_line
from .shaping import Sample


@dataclass
class TokenCounter:
    kind: str  # "hf", "hf_chat_template", "tokenizers", "tiktoken"
    name: str
    lengths: Callable[[Sequence[Sample]], list[int]]
    # the strings this tokenizer reads as one special token: prepare breaks them in texts and names too
    specials: tuple[str, ...] = ()


def _plain(sample: Sample) -> str:
    return "".join(f"{role}: {text}\n" for role, text in sample)


def _transcript(sample: Sample) -> str:
    return render_session((role == "assistant", text) for role, text in sample if role != "system")


def _batched(fn: Callable[[list[str]], list[int]], render: Callable[[Sample], str], batch: int = 1024):
    def lengths(samples: Sequence[Sample]) -> list[int]:
        out: list[int] = []
        for i in range(0, len(samples), batch):
            out.extend(fn([render(s) for s in samples[i:i + batch]]))
        return out
    return lengths


def _hf(path: Path) -> TokenCounter:
    try:
        from transformers import AutoTokenizer
        # never the folder's own Python (auto_map): unset, transformers would ask on stdin and run it on a "y"
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - any failure to load is the user's folder, say why
        raise UserError(f"cannot load a Hugging Face tokenizer from this folder: {first_line(e)}",
                        path) from None

    def encode(texts: list[str], special: bool) -> list[int]:
        return [len(ids) for ids in tok(texts, add_special_tokens=special)["input_ids"]]

    if getattr(tok, "chat_template", None):
        def render(sample: Sample) -> str:
            return tok.apply_chat_template([{"role": r, "content": t} for r, t in sample], tokenize=False)
        return TokenCounter("hf_chat_template", str(path), _batched(lambda xs: encode(xs, False), render),
                            _hf_specials(tok))
    return TokenCounter("hf", str(path), _batched(lambda xs: encode(xs, True), _plain), _hf_specials(tok))


def _hf_specials(tok: Any) -> tuple[str, ...]:
    found = set(getattr(tok, "all_special_tokens", None) or ())
    try:
        found.update(t.content for t in tok.added_tokens_decoder.values() if t.special)
    except AttributeError:
        pass
    return tuple(sorted(t for t in found if isinstance(t, str) and len(t) > 1))


def _tokenizers_file(path: Path) -> TokenCounter:
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise UserError(f"not a `tokenizers` tokenizer.json: {first_line(e)}", path) from None

    def encode(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    try:
        specials = tuple(sorted(t.content for t in tok.get_added_tokens_decoder().values()
                                if t.special and len(t.content) > 1))
    except AttributeError:
        specials = ()
    return TokenCounter("tokenizers", str(path), _batched(encode, _transcript), specials)


def fetch_timeout() -> float:
    """Seconds any one download may take in total (GRAFTKIT_FETCH_TIMEOUT, default 30)."""
    try:
        return max(0.1, float(os.environ.get("GRAFTKIT_FETCH_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def _fetch(url: str, what: str, timeout: float) -> bytes:
    """GET `url` within `timeout` seconds in total (connect, each read and the whole transfer)."""
    import requests

    print(f"fetching {what} from {url} (timeout {timeout:g} s) ...", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    try:
        with requests.get(url, timeout=(timeout, timeout), stream=True) as r:
            r.raise_for_status()
            parts = []
            for part in r.iter_content(1 << 16):
                parts.append(part)
                if time.monotonic() > deadline:
                    raise TimeoutError
            return b"".join(parts)
    except (requests.exceptions.Timeout, TimeoutError):
        raise UserError(f"timed out after {timeout:g} s fetching {what} from {url}: the network does not answer. "
                        f"Work offline: give --tokenizer a local tokenizer folder or tokenizer.json, or put the file "
                        f"in TIKTOKEN_CACHE_DIR (set HF_HUB_OFFLINE=1 for Hugging Face downloads)") from None
    except requests.exceptions.RequestException as e:
        raise UserError(f"{what} is not cached and could not be downloaded from {url} ({e.__class__.__name__}); "
                        f"run once with internet, or put the file in TIKTOKEN_CACHE_DIR, or give --tokenizer a "
                        f"local tokenizer folder or tokenizer.json") from None


def load_tiktoken(name: str, timeout: float | None = None):
    """tiktoken.get_encoding(name), with its first-use download announced and bounded in time.

    Why patch tiktoken.load.read_file: tiktoken calls requests.get without a timeout, and only
    that function knows the address (it runs only on a cache miss, so a cached encoding prints
    nothing and needs no network).
    """
    try:
        import tiktoken
        import tiktoken.load as tiktoken_load
    except ImportError:
        raise UserError("tiktoken is not installed (pip install tiktoken)") from None
    if name not in tiktoken.list_encoding_names():
        raise UserError(f"--tokenizer {name!r} is not a folder, a tokenizer.json or a tiktoken encoding "
                        f"({', '.join(tiktoken.list_encoding_names())})")
    limit = fetch_timeout() if timeout is None else timeout
    original = tiktoken_load.read_file

    def read_file(blobpath: str) -> bytes:
        if blobpath.startswith(("http://", "https://")):
            return _fetch(blobpath, f"tiktoken encoding {name!r}", limit)
        return original(blobpath)

    tiktoken_load.read_file = read_file
    try:
        return tiktoken.get_encoding(name)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - network and cache errors come in many types
        raise UserError(
            f"tiktoken encoding {name!r} is not cached and could not be downloaded "
            f"({e.__class__.__name__}); run once with internet, or set TIKTOKEN_CACHE_DIR to a folder "
            f"holding it, or pass a local tokenizer folder instead") from None
    finally:
        tiktoken_load.read_file = original


def _tiktoken(name: str) -> TokenCounter:
    enc = load_tiktoken(name)

    def encode(texts: list[str]) -> list[int]:
        return [len(ids) for ids in enc.encode_ordinary_batch(texts)]
    return TokenCounter("tiktoken", name, _batched(encode, _plain),
                        tuple(sorted(t for t in enc.special_tokens_set if len(t) > 1)))


def load_token_counter(spec: str) -> TokenCounter:
    """Resolve `--tokenizer`; raises UserError with the reason when it cannot be used."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _hf(path)
    if path.is_file():
        return _tokenizers_file(path)
    if "/" in spec or "\\" in spec or spec.endswith(".json"):
        raise UserError("no such tokenizer folder or file", path)
    return _tiktoken(spec)


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return int(sorted_values[min(rank, len(sorted_values)) - 1])


def token_report(counter: TokenCounter, samples: Sequence[Sample], max_seq_length: int) -> dict:
    """p50/p90/p99/max token lengths and how many samples exceed max_seq_length."""
    lengths = sorted(counter.lengths(samples))
    return {
        "tokenizer": counter.name,
        "kind": counter.kind,
        "samples": len(lengths),
        "p50": percentile(lengths, 50),
        "p90": percentile(lengths, 90),
        "p99": percentile(lengths, 99),
        "max": lengths[-1] if lengths else 0,
        "total_tokens": sum(lengths),
        "max_seq_length": max_seq_length,
        "over_max_seq_length": sum(1 for n in lengths if n > max_seq_length),
    }
