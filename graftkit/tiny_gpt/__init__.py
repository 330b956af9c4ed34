"""Pipeline 1: a nanoGPT-style tiny GPT trained from scratch on one person's chat transcript.

Modules, in the order a run uses them: config (every key, torch-free), tokenizer (char / BPE /
tiktoken as one tokenizer.json format), data (token tensors and the resumable epoch sampler), model
(GPT-2 blocks), train (the loop, checkpoints, resume), generate (samples and chat), export (to a
transformers GPT2LMHeadModel folder).
"""
