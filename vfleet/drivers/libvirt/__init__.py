"""libvirt: KVM/QEMU, Xen (libxl) and anything else libvirt speaks."""
