"""BL3P: the websocket codec (integer prices and amounts), a market-data client and a loopback simulator."""
