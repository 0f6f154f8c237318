"""vfleet: one terminal console for KVM, Xen and ESXi fleets."""

__version__ = "0.1.0"
