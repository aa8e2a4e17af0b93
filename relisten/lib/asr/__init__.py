"""Offline speech recognition: decoding, faster-whisper, transcript types and exports.

Framework-free on purpose: the background pipeline, the researcher CLI and the benchmark all
use it, and none of it needs Django or a database.
"""
