"""ESXi and vCenter: the vSphere API (pyVmomi) and vim-cmd over SSH."""
