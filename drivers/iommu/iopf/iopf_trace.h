/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tracepoints of the Rust IOPF core (drivers/iommu/iopf/), one for each step
 * of a page request's life. They are in the iommu trace system, next to
 * include/trace/events/iommu.h, and fired from Rust through
 * kernel::iommu::fault::trace (rust/kernel/iommu/fault/trace.rs):
 *
 *   iopf_report  a page request reported by an IOMMU driver
 *   iopf_hold    a partial request held for its group
 *   iopf_drop    the partials of a group dropped to stay within the bound
 *   iopf_handle  a complete group handed to a fault handler, and its result
 *   iopf_answer  a group answered, with the time since its last request
 *   iopf_abort   a group answered by the core: on removal, without memory,
 *                on a handler error, or incomplete
 *
 * The event names and fields are an interface: see
 * Documentation/iommu/iopf-driver-guide.rst.
 */
#undef TRACE_SYSTEM
#undef TRACE_INCLUDE_FILE
#undef TRACE_INCLUDE_PATH
#define TRACE_SYSTEM iommu
#define TRACE_INCLUDE_FILE iopf_trace
#define TRACE_INCLUDE_PATH .

#if !defined(_IOPF_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _IOPF_TRACE_H

#include <linux/device.h>
#include <linux/iommu.h>
#include <linux/tracepoint.h>

/* Why the core answered a group itself (iopf_abort). */
#define IOPF_ABORT_REMOVED	0
#define IOPF_ABORT_NOMEM	1
#define IOPF_ABORT_HANDLER	2
#define IOPF_ABORT_INCOMPLETE	3

TRACE_DEFINE_ENUM(IOMMU_PAGE_RESP_SUCCESS);
TRACE_DEFINE_ENUM(IOMMU_PAGE_RESP_INVALID);
TRACE_DEFINE_ENUM(IOMMU_PAGE_RESP_FAILURE);

TRACE_EVENT(iopf_report,
	TP_PROTO(struct device *dev, u32 pasid, u32 grpid, u32 flags, u32 perm,
		 u64 addr),
	TP_ARGS(dev, pasid, grpid, flags, perm, addr),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u32, pasid)
		__field(u32, grpid)
		__field(u32, flags)
		__field(u32, perm)
		__field(u64, addr)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->pasid = pasid;
		__entry->grpid = grpid;
		__entry->flags = flags;
		__entry->perm = perm;
		__entry->addr = addr;
	),
	TP_printk("dev=%s pasid=%u grpid=%u flags=%#x perm=%#x addr=%#llx last=%d",
		  __get_str(dev), __entry->pasid, __entry->grpid,
		  __entry->flags, __entry->perm, __entry->addr,
		  !!(__entry->flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE))
);

TRACE_EVENT(iopf_hold,
	TP_PROTO(struct device *dev, u32 pasid, u32 grpid, u32 held),
	TP_ARGS(dev, pasid, grpid, held),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u32, pasid)
		__field(u32, grpid)
		__field(u32, held)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->pasid = pasid;
		__entry->grpid = grpid;
		__entry->held = held;
	),
	TP_printk("dev=%s pasid=%u grpid=%u held=%u", __get_str(dev),
		  __entry->pasid, __entry->grpid, __entry->held)
);

TRACE_EVENT(iopf_drop,
	TP_PROTO(struct device *dev, u32 grpid, u32 count, u32 held),
	TP_ARGS(dev, grpid, count, held),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u32, grpid)
		__field(u32, count)
		__field(u32, held)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->grpid = grpid;
		__entry->count = count;
		__entry->held = held;
	),
	TP_printk("dev=%s grpid=%u count=%u held=%u", __get_str(dev),
		  __entry->grpid, __entry->count, __entry->held)
);

TRACE_EVENT(iopf_handle,
	TP_PROTO(struct device *dev, u32 pasid, u32 grpid, u32 faults, int ret),
	TP_ARGS(dev, pasid, grpid, faults, ret),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u32, pasid)
		__field(u32, grpid)
		__field(u32, faults)
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->pasid = pasid;
		__entry->grpid = grpid;
		__entry->faults = faults;
		__entry->ret = ret;
	),
	TP_printk("dev=%s pasid=%u grpid=%u faults=%u ret=%d", __get_str(dev),
		  __entry->pasid, __entry->grpid, __entry->faults, __entry->ret)
);

TRACE_EVENT(iopf_answer,
	TP_PROTO(struct device *dev, u32 pasid, u32 grpid, u32 code,
		 u32 latency_us),
	TP_ARGS(dev, pasid, grpid, code, latency_us),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u32, pasid)
		__field(u32, grpid)
		__field(u32, code)
		__field(u32, latency_us)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->pasid = pasid;
		__entry->grpid = grpid;
		__entry->code = code;
		__entry->latency_us = latency_us;
	),
	TP_printk("dev=%s pasid=%u grpid=%u code=%s latency_us=%u",
		  __get_str(dev), __entry->pasid, __entry->grpid,
		  __print_symbolic(__entry->code,
				   { IOMMU_PAGE_RESP_SUCCESS, "success" },
				   { IOMMU_PAGE_RESP_INVALID, "invalid" },
				   { IOMMU_PAGE_RESP_FAILURE, "failure" }),
		  __entry->latency_us)
);

TRACE_EVENT(iopf_abort,
	TP_PROTO(struct device *dev, u32 pasid, u32 grpid, u32 reason),
	TP_ARGS(dev, pasid, grpid, reason),
	TP_STRUCT__entry(
		__string(dev, dev_name(dev))
		__field(u32, pasid)
		__field(u32, grpid)
		__field(u32, reason)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->pasid = pasid;
		__entry->grpid = grpid;
		__entry->reason = reason;
	),
	TP_printk("dev=%s pasid=%u grpid=%u reason=%s", __get_str(dev),
		  __entry->pasid, __entry->grpid,
		  __print_symbolic(__entry->reason,
				   { IOPF_ABORT_REMOVED, "removed" },
				   { IOPF_ABORT_NOMEM, "nomem" },
				   { IOPF_ABORT_HANDLER, "handler" },
				   { IOPF_ABORT_INCOMPLETE, "incomplete" }))
);

#endif /* _IOPF_TRACE_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
