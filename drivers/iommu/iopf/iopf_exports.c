// SPDX-License-Identifier: GPL-2.0
/*
 * Exports the C API of the Rust IOPF core to modules, which cannot link
 * against a built-in Rust crate otherwise. The functions are defined in
 * iopf.rs (its ffi module) and declared in <linux/iommu.h>; Kbuild lists them
 * in iopf_exports_generated.h from the object, as rust/exports.c does for the
 * kernel crate.
 */

#include <linux/export.h>
#include <linux/iommu.h>

#include "iopf_exports_generated.h"
