"""Benchmarks of FIN: the hub against a bare aiokafka loop and the broker's own limit.

``python -m bench`` (``make bench``) runs everything once and writes ``bench/results/``.
Not part of ``make test``.
"""
