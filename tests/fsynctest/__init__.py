"""Shared helpers for fsync's tests (importable because pytest puts tests/ on sys.path)."""
