"""Matplotlib on a headless machine: the one place that picks the backend."""

__all__ = ["pyplot"]


def pyplot():
    """`matplotlib.pyplot` with the non-interactive Agg backend (figures are only ever written to files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
