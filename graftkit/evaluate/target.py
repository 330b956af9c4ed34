"""`Target`: what one evaluation compares (the models) and where its data and outputs are.

Its own module so that loading.py (which picks the pipeline) and tiny.py (which builds the tiny GPT's
models) both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..samples import Conversation, read_conversations
from .models import ReplyModel


@dataclass
class Target:
    """The models to compare ("base", "tuned") and the data to compare them on."""
    kind: str
    models: dict[str, ReplyModel]
    train_file: str  # for the report
    val_file: str
    out_dir: Path  # the model outputs; the report goes to out_dir/eval by default
    meta: dict = field(default_factory=dict)  # descriptions for the report
    splits: Callable[[], tuple[list[Conversation], list[Conversation]]] | None = None
    # the base model under another system prompt (LoRA only): the prompting baseline's model
    with_system_prompt: Callable[[str], ReplyModel] | None = None

    def load_data(self) -> tuple[list[Conversation], list[Conversation]]:
        """(train, held-out) conversations."""
        if self.splits is not None:
            return self.splits()
        return read_conversations(self.train_file), read_conversations(self.val_file)
