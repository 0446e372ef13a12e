"""Operator tools behind ``app.py``'s commands (synchronous, kafka-python): producing events,
dead letters (list, show, replay) and verifying the ledger's hash chains. They read and write
Kafka like any client; nothing here runs inside a worker."""
