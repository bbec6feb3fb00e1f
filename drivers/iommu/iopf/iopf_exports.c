// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the Rust IOPF core (iopf.rs): exports its C API to modules,
 * which cannot link against symbols of a built-in Rust crate otherwise.
 */

#include <linux/export.h>
#include <linux/iommu.h>

EXPORT_SYMBOL_GPL(iommu_report_device_fault);
EXPORT_SYMBOL_GPL(iopf_group_response);
EXPORT_SYMBOL_GPL(iopf_group_dequeue);
EXPORT_SYMBOL_GPL(iopf_free_group);
EXPORT_SYMBOL_GPL(iopf_queue_work);
EXPORT_SYMBOL_GPL(iopf_queue_alloc);
EXPORT_SYMBOL_GPL(iopf_queue_free);
EXPORT_SYMBOL_GPL(iopf_queue_add_device);
EXPORT_SYMBOL_GPL(iopf_queue_remove_device);
EXPORT_SYMBOL_GPL(iopf_queue_flush_dev);
EXPORT_SYMBOL_GPL(iopf_queue_discard_partial);
