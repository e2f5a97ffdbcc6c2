"""The emulated Kubernetes API server (``server.APIServer``) and its parts:
resources and errors, the etcd store and its list cache, selectors,
patches, watches, Table answers and the node lifecycle controller.

Import ``APIServer`` from ``chaosk3s.lab.k3s.apiserver.server``: this
package module stays empty so the controllers can import its parts
without importing the server.
"""
