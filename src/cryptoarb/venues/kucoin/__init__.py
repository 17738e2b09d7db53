"""KuCoin spot: native websocket market data (codec, connection manager, limits)."""
