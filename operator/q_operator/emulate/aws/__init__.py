"""The AWS stand-in: the services the kinds call, and STS, over loopback HTTP, driven by botocore's models.

Layers, bottom up: `model` (service models, routing), `validate` (generic constraint walker),
`restjson` and `query` behind `protocol` (the wire formats, in and out), `identity` (who calls:
account, role session, expiry), `state` (per account and region; `Table` with lagging reads),
`config` (the generic settings, and `Knobs`: what a service's own settings are), `services/*` (one
module per service: handlers, backend, knobs; `services/registry.py` is the only list of services),
`faults` (throttling, failures, lag draws, lost answers), `core` (one request end to end), `server`
(aiohttp + CLI), `testing` (`running_aws()` for in-process use) and `bench`. What it simulates:
docs/aws-standin.md.
"""
