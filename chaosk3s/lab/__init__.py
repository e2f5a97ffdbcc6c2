"""The embedded lab: an emulated K3s split-role cluster in network namespaces.

The lab only *produces an inventory*; activities reach its nodes through the
same code paths they use on a real cluster.
"""
