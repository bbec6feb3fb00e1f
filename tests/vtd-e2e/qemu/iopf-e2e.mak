# Devices of the VT-d end-to-end QEMU (configure
# --without-default-devices --with-devices-x86_64=iopf-e2e): the q35 board,
# which selects its chipset, the Intel IOMMU and the I/O page fault test
# device.
CONFIG_Q35=y
CONFIG_VTD=y
CONFIG_IOPF_TESTDEV=y
# The ACPI code that q35 selects (ACPI_CXL) calls into hw/cxl/cxl-host.c,
# whose stub lacks cxl_fmws_get_all_sorted(): without CXL (default y, but
# only with the default devices) qemu-system-x86_64 does not link in
# 10.2.2. CXL in turn needs the PCI expander bridge, its mailbox code the
# type 3 memory device, and its root port (cxl-rp) the PCIe root port.
CONFIG_PXB=y
CONFIG_CXL=y
CONFIG_CXL_MEM_DEVICE=y
CONFIG_PCIE_PORT=y
