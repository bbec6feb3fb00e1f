/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Mock IOMMU driver for the IOPF KUnit suite.
 *
 * A fake IOMMU registered with the IOMMU core on a private bus, fake devices
 * on that bus (each with a real dev->iommu and its own iommu_group), domains
 * whose iopf_handler is chosen by the test, attach handles for the RID and
 * for PASIDs, and a page_response() op that records every response in a
 * log.
 *
 * Every object created here is tied to the KUnit test that created it and is
 * released by a deferred action when the test ends, in reverse order of
 * creation. The setup helpers assert on failure, so they always return a
 * valid object.
 */
#ifndef _IOPF_MOCK_IOMMU_H
#define _IOPF_MOCK_IOMMU_H

#include <kunit/test.h>
#include <linux/iommu.h>
#include <linux/types.h>

/* The IOMMU driver supports a user-managed PASID table (ops->user_pasid_table). */
#define IOPF_MOCK_USER_PASID_TABLE	BIT(0)
/* The IOMMU driver has no page_response op. */
#define IOPF_MOCK_NO_PAGE_RESPONSE	BIT(1)
/*
 * The IOMMU driver supports SVA (ops->domain_alloc_sva), so that
 * iommu_sva_bind_device() works on its devices.
 */
#define IOPF_MOCK_SVA			BIT(2)

/* PASID width of the mock IOMMU and of its devices. */
#define IOPF_MOCK_PASID_BITS		20

/**
 * struct iopf_mock_resp - One call of the mock's page_response op
 * @dev: the device passed to page_response
 * @msg: the response message, as passed
 * @fault: a copy of the fault of the event passed to page_response
 * @has_evt: the event pointer was not NULL (@fault is valid)
 */
struct iopf_mock_resp {
	struct device *dev;
	struct iommu_page_response msg;
	struct iommu_fault fault;
	bool has_evt;
};

struct iopf_mock_log;
struct iopf_mock_iommu;
struct iopf_mock_attach;

struct iopf_mock_log *iopf_mock_log_alloc(struct kunit *test,
					  unsigned int capacity);
unsigned int iopf_mock_log_count(struct iopf_mock_log *log);
unsigned int iopf_mock_log_dropped(struct iopf_mock_log *log);
bool iopf_mock_log_get(struct iopf_mock_log *log, unsigned int idx,
		       struct iopf_mock_resp *out);

struct iopf_mock_iommu *iopf_mock_iommu_create(struct kunit *test,
					       unsigned int flags,
					       struct iopf_mock_log *log);

/*
 * Called on every page_response of a mock IOMMU, after the log, with the
 * arguments as passed (@evt may be NULL). Lets a test count responses its own
 * way, e.g. per request, where the bounded log would overflow.
 */
typedef void (*iopf_mock_tap_fn)(void *data, struct device *dev,
				 const struct iopf_fault *evt,
				 const struct iommu_page_response *msg);
void iopf_mock_iommu_set_tap(struct iopf_mock_iommu *mock, iopf_mock_tap_fn fn,
			     void *data);
struct device *iopf_mock_dev_create(struct kunit *test,
				    struct iopf_mock_iommu *mock);

struct iommu_domain *
iopf_mock_domain_alloc(struct kunit *test, struct iopf_mock_iommu *mock,
		       unsigned int type,
		       int (*iopf_handler)(struct iopf_group *group));

struct iopf_mock_attach *
iopf_mock_attach_rid(struct kunit *test, struct iommu_domain *domain,
		     struct device *dev, struct iommu_attach_handle *handle);
struct iopf_mock_attach *
iopf_mock_attach_pasid(struct kunit *test, struct iommu_domain *domain,
		       struct device *dev, ioasid_t pasid,
		       struct iommu_attach_handle *handle);
void iopf_mock_detach(struct kunit *test, struct iopf_mock_attach *attach);
int iopf_mock_attach_handle(struct iommu_domain *domain, struct device *dev,
			    ioasid_t pasid, struct iommu_attach_handle *handle);
void iopf_mock_detach_handle(struct iommu_domain *domain, struct device *dev,
			     ioasid_t pasid);

/*
 * A group that its handler kept pending was answered IOMMU_PAGE_RESP_INVALID
 * by iopf_queue_remove_device(). io-pgfault.c also freed it there; the Rust
 * core leaves it to its handler, which frees it with this.
 */
void iopf_mock_release_removed_group(struct iopf_group *group);

#endif /* _IOPF_MOCK_IOMMU_H */
