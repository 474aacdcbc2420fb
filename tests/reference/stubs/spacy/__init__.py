"""Import-only stand-in for spaCy (used only by WhiteSpaceTokenizer / T5 normalize_text=True)."""

__version__ = "0.0.0+stub"


def load(*args, **kwargs):
    raise RuntimeError("spacy stub: spacy.load is not available in the reference env")


class _Cli:
    @staticmethod
    def download(*args, **kwargs):
        raise RuntimeError("spacy stub: spacy.cli.download is not available in the reference env")


cli = _Cli()
