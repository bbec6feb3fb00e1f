// SPDX-License-Identifier: GPL-2.0
/*
 * The tracepoints of the Rust IOPF core, and the rust_do_trace_*() functions
 * through which kernel::iommu::fault::trace fires them.
 */

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include "iopf_trace.h"
