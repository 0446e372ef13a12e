"""FIN's own Confluent-compatible schema registry, following Karapace's design.

The fallback for when Apicurio Registry cannot be fetched or run (see ../shared/ARCHITECTURE.md).

- All state lives in one compacted Kafka topic, `_schemas` (1 partition, replication factor 1,
  cleanup.policy=compact), created at start when missing. At start the process reads the topic from
  the beginning and rebuilds subjects, versions, ids and compatibility levels in memory; only then
  does it open its HTTP port. Ids therefore survive restarts.
- Every change is first produced to the topic (acks=all) and acknowledged, then applied to memory,
  then answered. Reads are answered from memory.
- Ids are global and increasing; a schema with the same canonical text (whitespace and key order
  do not count) gets the same id under every subject.
- ONE instance per topic: there is no leader election. A second instance on the same topic would
  hand out the same ids for different schemas. Run it as a single supervised process.
- REST API: Confluent Schema Registry's (subjects, versions, schemas by id, config, compatibility,
  soft and permanent deletes), Avro only, no schema references.
- Compatibility: Confluent's seven levels (default BACKWARD) on Avro's reader/writer checker, plus
  a rule for money: a field's logical type, decimal precision and decimal scale may not change.

Run: `python -m registry --port 8081 --bootstrap 127.0.0.1:9092` (or env REGISTRY_PORT,
REGISTRY_KAFKA_BOOTSTRAP, REGISTRY_TOPIC); it binds 127.0.0.1 and stops cleanly on SIGTERM/SIGINT.
"""
