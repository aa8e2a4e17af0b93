"""Framework-free building blocks (no Django imports here)."""
