"""Speed and memory figures; `python3 dev.py bench` runs them all and prints one table."""
