"""Xen dom0 with the xl toolstack, over SSH."""
