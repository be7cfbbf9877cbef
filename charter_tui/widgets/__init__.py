"""Reusable widgets (each carries its own DEFAULT_CSS); screen layout lives in charter.tcss."""
