"""SkySense platform: multi-modal remote-sensing foundation models, end to end.

The library sets no process environment; entry points do (:mod:`skysense.cli.process_env`).
"""

__version__ = "0.1.0"
