"""Coinbase Exchange: the websocket feed codec, a market-data client and a loopback simulator of the feed."""
