"""Per-service behaviour of the stand-in: one module per service, each with a `HANDLERS` table."""
