"""Command-line entry points: ``bastionctl`` (operator tool) and ``bastiond`` (the daemon)."""
