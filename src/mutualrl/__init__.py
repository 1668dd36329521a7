"""mutualrl: an LLM teacher and an RL student that improve each other through feedback."""

__version__ = "0.1.0"
