"""stylecond test suite (a package, so tests.support wins over any third-party top-level tests package)."""
