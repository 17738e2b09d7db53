"""cryptoarb: an asyncio arbitrage engine for centralized crypto exchanges."""

__version__ = "0.1.0"
