"""The AWS stand-in: qbusiness, qapps, appflow and STS over loopback HTTP, driven by botocore's models.

Layers, bottom up: `model` (service models, routing), `validate` (generic constraint walker),
`restjson` and `query` behind `protocol` (the wire formats, in and out), `identity` (who calls:
account, role session, expiry), `state` (per account and region; `Table` with lagging reads),
`services/*` (one module per service, listed in `services/registry.py`), `faults` (throttling,
failures, lag draws, lost answers), `core` (one request end to end), `server` (aiohttp + CLI),
`testing` (`running_aws()` for in-process use) and `bench`. What it simulates: docs/aws-standin.md.
"""
