"""The tiny GPT's tokenizer: char-level or byte-level BPE (or a tiktoken encoding, for comparison).

Why one file format for all of them: every kind is built as a Hugging Face `tokenizers` pipeline and
saved as a `tokenizer.json`, so exactly one loading path serves training, sampling and the exported
model, and stock `transformers.PreTrainedTokenizerFast(tokenizer_file=...)` loads it too.

- char: a WordLevel model over single characters (a pre-tokenizer splits the text into characters,
  the Fuse decoder joins them back). Characters rarer than `min_char_freq` map to `<unk>`.
- bpe:  byte-level BPE (GPT-2 style, no unknown token possible) trained on the corpus, 256-512 tokens.
- tiktoken: an existing encoding (e.g. gpt2) converted to the same format. tiktoken downloads its
  files on first use, so offline this fails with a clear error.

The speaker markers (<|me|>, <|them|>, <|endoftext|>) are special tokens with ids 0-2 in char and
BPE tokenizers, so the model sees each as one symbol and generation can stop on them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ..corpus import END, ME, SPECIAL_TOKENS, THEM
from ..errors import ConfigError, UserError, first_line
from ..fileio import atomic_path

UNK = "<unk>"


def _strip_markers(text: str) -> str:
    for tok in SPECIAL_TOKENS:
        text = text.replace(tok, "")
    return text


def split_sessions(text: str) -> list[str]:
    """Cut a transcript after each END marker. Encoding the pieces gives the same ids as encoding the
    whole (special tokens already split the text), and lets `encode_batch` use several threads."""
    parts = text.split(END)
    out = [p + END for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def build_char_tokenizer(text: str, min_char_freq: int = 1) -> Tokenizer:
    """One token per character seen at least `min_char_freq` times; the markers and <unk> first."""
    counts = Counter(_strip_markers(text))
    chars = sorted(c for c, n in counts.items() if n >= min_char_freq)
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, UNK))}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def build_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Tokenizer:
    """Byte-level BPE: 256 byte tokens + the markers + (vocab_size - 259) merges learned from `texts`."""
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ConfigError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} for byte-level BPE")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (what byte-level BPE vocabularies use)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _split_by_ranks(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Run BPE on `token` using only merges ranked below `max_rank` (recovers a tiktoken merge)."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return parts
        i = best[1]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]


def tiktoken_to_tokenizer(mergeable_ranks: dict[bytes, int], pat_str: str,
                          special_tokens: dict[str, int]) -> Tokenizer:
    """Convert a tiktoken encoding (ranks, split regex, specials) into a `tokenizers` byte-level BPE.

    Missing speaker markers are appended as new special tokens after the encoding's own ids.
    """
    b2u = _bytes_to_unicode()
    to_str = lambda bs: "".join(b2u[b] for b in bs)  # noqa: E731
    vocab = {to_str(tok): rank for tok, rank in mergeable_ranks.items()}
    merges = []
    for tok, rank in sorted(mergeable_ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = _split_by_ranks(tok, mergeable_ranks, rank)
        if len(parts) != 2:
            raise UserError(f"cannot convert tiktoken token {tok!r} to a BPE merge")
        merges.append((to_str(parts[0]), to_str(parts[1])))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pat_str), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken
    existing = sorted(special_tokens.items(), key=lambda kv: kv[1])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s, _ in existing])
    tok.add_special_tokens([s for s in SPECIAL_TOKENS if s not in special_tokens])
    return tok


def build_tiktoken_tokenizer(name: str) -> Tokenizer:
    from ..prepare.tokenizer_report import load_tiktoken  # announced, time-bounded first-use download

    try:
        enc = load_tiktoken(name)
    except UserError as e:
        raise UserError(f"{e.message}; or use tokenizer_type=bpe / char") from None
    return tiktoken_to_tokenizer(enc._mergeable_ranks, enc._pat_str, enc._special_tokens)


def build_tokenizer(kind: str, train_text: str, vocab_size: int = 512, min_char_freq: int = 1,
                    tiktoken_encoding: str = "gpt2") -> Tokenizer:
    if kind == "char":
        return build_char_tokenizer(train_text, min_char_freq)
    if kind == "bpe":
        return build_bpe_tokenizer(split_sessions(train_text), vocab_size)
    if kind == "tiktoken":
        return build_tiktoken_tokenizer(tiktoken_encoding)
    raise ConfigError(f"tokenizer_type must be bpe, char or tiktoken, got {kind!r}")


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tok.save(str(tmp))


def tokenizer_kind(tok: Tokenizer) -> str:
    model = tok.model.__class__.__name__
    return {"WordLevel": "char", "BPE": "bpe"}.get(model, model.lower())


@dataclass
class TinyTokenizer:
    """A loaded tokenizer.json plus what training needs: ids of the markers, identity, text <-> ids."""

    tok: Tokenizer
    path: str
    sha256: str
    json_text: str = ""

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @property
    def kind(self) -> str:
        return tokenizer_kind(self.tok)

    def token_id(self, token: str) -> int:
        i = self.tok.token_to_id(token)
        if i is None:
            raise UserError(f"tokenizer has no {token} token; rebuild it with tokenizer_setup.py", self.path)
        return i

    @property
    def end_id(self) -> int:
        return self.token_id(END)

    @property
    def me_id(self) -> int:
        return self.token_id(ME)

    @property
    def them_id(self) -> int:
        return self.token_id(THEM)

    @property
    def unk_id(self) -> int | None:
        return self.tok.token_to_id(UNK)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_corpus(self, text: str) -> list[int]:
        """Encode a whole transcript, sessions in parallel; same ids as `encode(text)`."""
        ids: list[int] = []
        for enc in self.tok.encode_batch(split_sessions(text), add_special_tokens=False):
            ids.extend(enc.ids)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def identity(self) -> dict:
        return {"sha256": self.sha256, "vocab_size": self.vocab_size, "kind": self.kind}


def load_tokenizer(path: str | Path) -> TinyTokenizer:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError("tokenizer not found (build it with tokenizer_setup.py)", path) from None
    try:
        text = data.decode("utf-8")
        tok = Tokenizer.from_str(text)
    except Exception as e:
        raise UserError(f"not a tokenizer.json ({first_line(e)})", path) from None
    return TinyTokenizer(tok, str(path), hashlib.sha256(data).hexdigest(), text)


def tokenizer_from_json(text: str, label: str) -> TinyTokenizer:
    """A tokenizer stored inside a checkpoint (so sampling never depends on the file on disk)."""
    tok = Tokenizer.from_str(text)
    return TinyTokenizer(tok, label, hashlib.sha256(text.encode("utf-8")).hexdigest(), text)


def load_hf_tokenizer(source: "str | Path | TinyTokenizer"):
    """A tokenizer.json (path, or an already loaded TinyTokenizer) as a
    `transformers.PreTrainedTokenizerFast`, with the markers declared as special tokens."""
    from transformers import PreTrainedTokenizerFast

    kw = dict(eos_token=END, bos_token=END, clean_up_tokenization_spaces=False)
    if isinstance(source, TinyTokenizer):
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(source.tok.to_str()), **kw)
    else:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(source), **kw)
    if UNK in tok.get_vocab():
        tok.unk_token = UNK
    tok.add_special_tokens({"additional_special_tokens": [ME, THEM]})
    return tok


def tokenizer_stats(tt: TinyTokenizer, train_text: str, val_text: str | None) -> dict:
    """Vocab size, chars per token on train and val, and the unknown-token rate on val."""
    stats: dict = {"kind": tt.kind, "vocab_size": tt.vocab_size, "path": tt.path, "sha256": tt.sha256}
    for name, text in (("train", train_text), ("val", val_text)):
        if text is None:
            continue
        ids = tt.encode_corpus(text)
        stats[f"{name}_chars"] = len(text)
        stats[f"{name}_tokens"] = len(ids)
        stats[f"{name}_chars_per_token"] = len(text) / max(1, len(ids))
        if name == "val":
            unk = tt.unk_id
            n_unk = sum(1 for i in ids if i == unk) if unk is not None else 0
            stats["val_unk_tokens"] = n_unk
            stats["val_unk_rate"] = n_unk / max(1, len(ids))
            stats["val_coverage"] = 1.0 - stats["val_unk_rate"]
    return stats


def format_stats(stats: dict) -> str:
    lines = [f"tokenizer: {stats['kind']}, vocab size {stats['vocab_size']} ({stats['path']})"]
    for name in ("train", "val"):
        if f"{name}_tokens" in stats:
            lines.append(f"  {name}: {stats[f'{name}_chars']:,} chars -> {stats[f'{name}_tokens']:,} tokens, "
                         f"{stats[f'{name}_chars_per_token']:.3f} chars/token")
    if "val_unk_rate" in stats:
        lines.append(f"  val coverage: {100 * stats['val_coverage']:.3f}% "
                     f"({stats['val_unk_tokens']:,} unknown tokens, rate {stats['val_unk_rate']:.2e})")
    return "\n".join(lines)


def read_text(path: str | Path, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{key} not found: {path} (run prepare_training_data.py first, or set {key}=...)") from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", path) from None


def ensure_tokenizer(cfg, log=print) -> TinyTokenizer:
    """Load cfg.tokenizer_path, building it from cfg.train_file first if it does not exist; check it
    matches what the config asks for (kind and BPE vocab size)."""
    path = Path(cfg.tokenizer_path)
    if not path.is_file():
        log(f"tokenizer {path} not found: building a {cfg.tokenizer_type} tokenizer from {cfg.train_file}")
        tok = build_tokenizer(cfg.tokenizer_type, read_text(cfg.train_file, "train_file"), cfg.vocab_size,
                              cfg.min_char_freq, cfg.tiktoken_encoding)
        save_tokenizer(tok, path)
    tt = load_tokenizer(path)
    want = "bpe" if cfg.tokenizer_type == "tiktoken" else cfg.tokenizer_type
    if tt.kind != want:
        raise ConfigError(f"tokenizer {path} is a {tt.kind} tokenizer but tokenizer_type is "
                          f"{cfg.tokenizer_type}; run tokenizer_setup.py or point tokenizer_path elsewhere")
    if cfg.tokenizer_type == "bpe" and tt.vocab_size > cfg.vocab_size:
        raise ConfigError(f"tokenizer {path} has {tt.vocab_size} tokens but vocab_size is {cfg.vocab_size}; "
                          f"run tokenizer_setup.py to rebuild it or set vocab_size={tt.vocab_size}")
    if cfg.tokenizer_type == "bpe" and tt.vocab_size < cfg.vocab_size:
        log(f"note: tokenizer {path} has {tt.vocab_size} tokens, fewer than vocab_size={cfg.vocab_size} "
            f"(a small corpus has too few repeated pairs, or it was built with a smaller vocab_size)")
    for marker in SPECIAL_TOKENS:
        tt.token_id(marker)
    return tt
