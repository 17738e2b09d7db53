"""Venues: the IO boundary to exchanges (real, simulated or recorded)."""
