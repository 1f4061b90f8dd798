"""q-operator: manages Amazon Q Business plugins, Q Apps library items and AppFlow custom connectors
from Kubernetes custom resources."""

__version__ = "0.1.0"
