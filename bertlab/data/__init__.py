"""Dataset builders and converters (pure Python: no NeMo import)."""
