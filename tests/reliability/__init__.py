"""Reliability suite: the real operator against the AWS stand-in and a Kubernetes API server (the
stand-in, or a real kube-apiserver of its own for the control-plane rows) under crashes, throttling,
faults, drift, deletion edge cases, downtime, name clashes, a stopped kube-apiserver and etcd
compaction; `python -m tests.reliability` prints one table."""
