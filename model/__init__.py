"""Transformer language model built from first principles."""
