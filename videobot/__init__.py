"""The command line above every layer: `python -m videobot run | sim | generate | doctor`."""
