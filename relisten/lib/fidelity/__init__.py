"""Fidelity scales as data: loading, validating, scoring and writing scale documents.

Framework-free: nothing here imports Django. See scale.py for the public API.
"""
