"""Executors: turn an opportunity's plan into orders and fills (paper or live)."""
