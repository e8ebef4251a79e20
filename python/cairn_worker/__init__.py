"""Cairn's Python worker: ``python3 -m cairn_worker <entry.py>`` (SPEC §11.4)."""
