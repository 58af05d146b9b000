"""Storage tests: the loader contract suite and per-loader tests."""
