"""Stand-in for librosa.filters."""


def chroma(*args: object, **kwargs: object) -> None:
    raise RuntimeError("librosa stub: filters.chroma is not available in the reference env")
