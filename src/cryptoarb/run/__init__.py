"""``cryptoarb run`` / ``cryptoarb watch``: the engine against a live venue on one event loop (docs/run.md).

- :mod:`~cryptoarb.run.runner`: :class:`RunApp`, the TaskGroup application, and :class:`RunSummary`;
- :mod:`~cryptoarb.run.supervisor`: restart-with-backoff supervision of its tasks;
- :mod:`~cryptoarb.run.scanner`: the REST scanner, ranking every cycle off the hot path;
- :mod:`~cryptoarb.run.watchlist`: the watchlist, its selection and its atomically written JSON file;
- :mod:`~cryptoarb.run.status_server` / :mod:`~cryptoarb.run.metrics`: ``/status`` and ``/metrics``;
- :mod:`~cryptoarb.run.transport`: bounded websocket reads; :mod:`~cryptoarb.run.venue`: the KuCoin venue;
- :mod:`~cryptoarb.run.cli`: the typer commands ``run_command`` and ``watch_command``.

Importing this package is cheap; the modules load what they need.
"""
