"""Per-service behaviour of the stand-in: one module per service, each building a `Service`
(handlers, per-account-and-region backend, state dump) that `registry.SERVICES` lists."""
