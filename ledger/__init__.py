"""FIN's pure ledger core: money, periods, chart, events, validation, rules, reducers.

Imports only the standard library and the project's ``errors`` root; no I/O happens at import
time, so every module here can be used from tests, streams and tools alike.
"""
