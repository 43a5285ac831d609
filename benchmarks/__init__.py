"""Performance benchmarks with recorded results (``python -m benchmarks [NAME...]``); not timed tests."""
