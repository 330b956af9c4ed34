"""graftkit: shared logic behind the personality-grafting training scripts.

The top-level scripts (prepare_training_data.py, tokenizer_setup.py, train_tiny_gpt.py, train_lora.py)
stay thin; everything they share lives here so nothing is copy-pasted between them.
"""

__version__ = "0.1.0"
