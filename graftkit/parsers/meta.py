"""Placeholder: being written in this session."""
PARSERS: list = []
