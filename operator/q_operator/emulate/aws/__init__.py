"""The AWS stand-in: qbusiness, qapps and appflow over loopback HTTP, driven by botocore's models.

Layers, bottom up: `model` (service models, routing), `validate` (generic constraint walker),
`protocol` (rest-json in and out), `services/*` (per-service behaviour over `state`), `faults`
(throttling, failures), `core` (one request end to end), `server` (aiohttp + CLI), `testing`
(`running_aws()` for in-process use) and `bench`.
"""
