"""callflow-analyzer: the call-flow story of a WebRTC / ACS / Teams packet capture."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # analyze pulls in pandas; keep `import analyzer` (and the CLI's fast paths) light
    if name in ("analyze", "Analysis"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)


__all__ = ["Analysis", "__version__", "analyze"]
