"""Outcome monitoring rules without Django: instruments, scoring, reliable change, FHIR."""
