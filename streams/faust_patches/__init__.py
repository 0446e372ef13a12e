"""Every replacement of faust-streaming (and mode) internals FIN makes, in one place.

faust-streaming 0.15.3 (pinned by constraints.txt) loses or skips records in a few situations
that at-least-once processing cannot live with; the modules here replace the faust code
involved, each naming in its docstring the faust behaviour it replaces and why:

- ``commit_guard``: a failed offset commit (faust advanced its bookkeeping anyway), a producer
  flush that gave up after 0.1 s, gaps opened over records already queued after a seek, the
  agents' queues emptied on resume; plus the stall watch run by ``streams.lag``.
- ``delivery_audit``: an opt-in audit (``FIN_DELIVERY_AUDIT=1``) of every step of a record from
  the Kafka client to the agents.
- ``quiet_monitor``: faust's Monitor sensor without its per-record bookkeeping.
- ``fast_drain``: faust's fetcher loop handing a record to the agents' queues inline when that
  cannot block, instead of racing four tasks per record (``FIN_FAST_DRAIN``).
- ``fetch_wait``: the worker consumer's fetches wait up to ``FIN_FETCH_MAX_WAIT_MS`` for
  ``FIN_FETCH_MIN_BYTES`` instead of returning at the first byte.
- ``fast_recovery``: tables restored by a bulk reader of their changelogs (``FIN_FAST_RECOVERY``).
- ``whole_node_produce`` (aiokafka's producer): a produce request takes the lingering batches of
  its broker along once one is ready (``FIN_WHOLE_NODE_PRODUCE``); its own test pins aiokafka.

Each module lists what it replaces (``REPLACED``) and the private state it reads (``READ``) as
``(class, attribute)`` pairs; ``tests/unit/streams/faust_patches/test_faust_still_has.py`` fails
when the installed faust no longer has one of them, or is another version than the one these
patches were written against (``FAUST_VERSION_REVIEWED``): review every patch before moving the
pin. ``streams/take.py`` (the batched runtime's use of faust's stream internals) keeps its own
list, ``STREAM_INTERNALS``, checked by ``tests/unit/streams/test_take.py``.
"""

FAUST_VERSION_REVIEWED = "0.15.3"
