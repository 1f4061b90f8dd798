"""The Kubernetes API stand-in: `q-operator emulate kube` and `server.running_kube_emulator()`."""
