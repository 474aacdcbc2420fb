"""stylecond's own CPU kernels (C, built on first use): :mod:`stylecond.kernels.native`."""
