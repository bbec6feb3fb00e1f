/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of the Rust IOPF sample's mock IOMMU: registering an IOMMU with
 * the IOMMU core, which Rust in 7.3 does not wrap. Rust declares these
 * prototypes in mock_iommu.rs (module `shim`); keep the two in step.
 */
#ifndef _RUST_IOPF_IOMMU_SHIM_H
#define _RUST_IOPF_IOMMU_SHIM_H

#include <linux/iommu.h>

struct rust_iopf_iommu;

typedef void (*rust_iopf_page_response_t)(struct device *dev,
					  struct iopf_fault *evt,
					  struct iommu_page_response *msg);
typedef int (*rust_iopf_handler_t)(struct iopf_group *group);

struct rust_iopf_iommu *
rust_iopf_iommu_register(struct device *parent, const char *name,
			 rust_iopf_page_response_t page_response);
void rust_iopf_iommu_unregister(struct rust_iopf_iommu *iommu);

struct device *rust_iopf_endpoint_add(struct rust_iopf_iommu *iommu,
				      unsigned int index);
void rust_iopf_endpoint_remove(struct device *dev);

struct iommu_domain *rust_iopf_domain_alloc(struct rust_iopf_iommu *iommu,
					    rust_iopf_handler_t iopf_handler);
void rust_iopf_domain_free(struct iommu_domain *domain);
int rust_iopf_domain_attach(struct iommu_domain *domain, struct device *dev);
void rust_iopf_domain_detach(struct iommu_domain *domain, struct device *dev);

#endif /* _RUST_IOPF_IOMMU_SHIM_H */
