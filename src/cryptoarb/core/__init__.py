"""The pure core: books, cycle graph, detection, sizing, risk and ledger. No IO, no clock reads."""
