// SPDX-License-Identifier: GPL-2.0
/*
 * C glue of the Rust IOPF core (iopf.rs): exports its C API to modules,
 * which cannot link against symbols of a built-in Rust crate otherwise,
 * and the rate limit shared by its warnings (dev_warn_ratelimited() is a
 * macro with a static state per call site; Rust has no equivalent yet).
 */

#include <linux/export.h>
#include <linux/iommu.h>
#include <linux/ratelimit.h>

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

bool iopf_warn_ratelimit(void);

static DEFINE_RATELIMIT_STATE(iopf_ratelimit, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

/* Called by the Rust core before printing a warning. */
bool iopf_warn_ratelimit(void)
{
	return __ratelimit(&iopf_ratelimit);
}
