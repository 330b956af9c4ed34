"""Pipeline 1: a nanoGPT-style tiny GPT trained from scratch on one person's chat transcript.

The training loop itself is in train_tiny_gpt.py at the repository root, top to bottom like nanoGPT's
train.py. This package holds what it imports, in the order a run uses it: config (every key,
torch-free), runtime (device, precision, torchrun/DDP, Ctrl-C, will-it-fit), tokenizer (char / BPE /
tiktoken as one tokenizer.json format), data (token tensors and the resumable epoch sampler), model
(GPT-2 blocks), checkpoints (resume checks, loading for inference), generate (samples and chat),
export (to a transformers GPT2LMHeadModel folder).
"""
