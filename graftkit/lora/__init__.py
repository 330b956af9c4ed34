"""Pipeline 2: LoRA fine-tuning of a pre-trained chat model on the person's conversations.

Modules: presets (model ids, chat-template families), config (LoraTrainConfig), data (reading,
templating, label mask), backend (Unsloth / PEFT selection, loading details), train (helpers for the
run, whose recipe reads top to bottom in train_lora.py),
export (adapter / merged / GGUF), chat (`--chat`). Heavy libraries are imported lazily, so that
unsloth can be imported before transformers on the GPU branch.
"""
