// SPDX-License-Identifier: GPL-2.0
/*
 * Mock IOMMU driver for the IOPF KUnit suite.
 *
 * Modelled on the iommufd selftest mock (drivers/iommu/iommufd/selftest.c):
 * each mock IOMMU owns a private bus registered with the IOMMU core through
 * iommu_device_register_bus(), so devices created on that bus are probed by
 * the core and get a real dev->iommu and a singleton iommu_group. Domains are
 * allocated here directly (the core only needs ->owner and ->ops to attach
 * them) with the iopf_handler the test asks for.
 *
 * The mock does not join devices to an IOPF queue on attach, as real drivers
 * do: the tests drive iopf_queue_add_device()/iopf_queue_remove_device()
 * themselves, so that every IOPF entry point is called explicitly.
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/atomic.h>
#include <linux/device.h>
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/property.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "../../../iommu-priv.h"
#include "iopf_mock_iommu.h"

struct iopf_mock_log {
	/* protects the counts and entries: responses come from any context */
	spinlock_t lock;
	unsigned int count;
	unsigned int dropped;
	unsigned int capacity;
	struct iopf_mock_resp *entries;
};

struct iopf_mock_iommu {
	struct bus_type bus;
	struct notifier_block nb;
	struct iommu_ops ops;
	struct iommu_device iommu;
	struct iopf_mock_log *log;
	iopf_mock_tap_fn tap;
	void *tap_data;
	atomic_t next_dev;
	char name[32];
};

struct iopf_mock_dev {
	struct device dev;
	struct iopf_mock_iommu *mock;
};

struct iopf_mock_attach {
	struct iommu_domain *domain;
	struct device *dev;
	ioasid_t pasid;
	bool rid;
};

static atomic_t iopf_mock_next_id = ATOMIC_INIT(0);

static void iopf_mock_dev_release(struct device *dev)
{
	kfree(container_of(dev, struct iopf_mock_dev, dev));
}

static struct iopf_mock_dev *to_iopf_mock_dev(struct device *dev)
{
	if (dev->release != iopf_mock_dev_release)
		return NULL;
	return container_of(dev, struct iopf_mock_dev, dev);
}

/* Response log */

/**
 * iopf_mock_log_alloc() - Allocate a page response log
 * @test: the test owning the log
 * @capacity: maximum number of responses recorded; further ones are counted
 *            as dropped
 *
 * Return: the log; asserts on allocation failure.
 */
struct iopf_mock_log *iopf_mock_log_alloc(struct kunit *test,
					  unsigned int capacity)
{
	struct iopf_mock_log *log;

	log = kunit_kzalloc(test, sizeof(*log), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, log);
	log->entries = kunit_kcalloc(test, capacity, sizeof(*log->entries),
				     GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, log->entries);
	log->capacity = capacity;
	spin_lock_init(&log->lock);

	return log;
}

static void iopf_mock_log_add(struct iopf_mock_log *log, struct device *dev,
			      const struct iopf_fault *evt,
			      const struct iommu_page_response *msg)
{
	struct iopf_mock_resp *resp;
	unsigned long flags;

	spin_lock_irqsave(&log->lock, flags);
	if (log->count >= log->capacity) {
		log->dropped++;
		goto out;
	}
	resp = &log->entries[log->count];
	resp->dev = dev;
	resp->msg = *msg;
	resp->has_evt = !!evt;
	if (evt)
		resp->fault = evt->fault;
	log->count++;
out:
	spin_unlock_irqrestore(&log->lock, flags);
}

/**
 * iopf_mock_log_count() - Number of responses recorded so far
 * @log: the log
 *
 * Return: the number of page_response calls recorded (dropped ones excluded).
 */
unsigned int iopf_mock_log_count(struct iopf_mock_log *log)
{
	unsigned long flags;
	unsigned int count;

	spin_lock_irqsave(&log->lock, flags);
	count = log->count;
	spin_unlock_irqrestore(&log->lock, flags);

	return count;
}

/**
 * iopf_mock_log_dropped() - Number of responses that did not fit in the log
 * @log: the log
 *
 * Return: the number of page_response calls not recorded for lack of room.
 */
unsigned int iopf_mock_log_dropped(struct iopf_mock_log *log)
{
	unsigned long flags;
	unsigned int dropped;

	spin_lock_irqsave(&log->lock, flags);
	dropped = log->dropped;
	spin_unlock_irqrestore(&log->lock, flags);

	return dropped;
}

/**
 * iopf_mock_log_get() - Copy out one recorded response
 * @log: the log
 * @idx: index of the response, in the order page_response was called
 * @out: where to copy it
 *
 * Return: true if @idx was recorded, false otherwise.
 */
bool iopf_mock_log_get(struct iopf_mock_log *log, unsigned int idx,
		       struct iopf_mock_resp *out)
{
	unsigned long flags;
	bool found = false;

	spin_lock_irqsave(&log->lock, flags);
	if (idx < log->count) {
		*out = log->entries[idx];
		found = true;
	}
	spin_unlock_irqrestore(&log->lock, flags);

	return found;
}

/* IOMMU driver */

static int iopf_mock_attach_dev(struct iommu_domain *domain,
				struct device *dev, struct iommu_domain *old)
{
	return 0;
}

static int iopf_mock_set_dev_pasid(struct iommu_domain *domain,
				   struct device *dev, ioasid_t pasid,
				   struct iommu_domain *old)
{
	return 0;
}

static const struct iommu_domain_ops iopf_mock_domain_ops = {
	.attach_dev = iopf_mock_attach_dev,
	.set_dev_pasid = iopf_mock_set_dev_pasid,
};

static void iopf_mock_sva_domain_free(struct iommu_domain *domain)
{
	kfree(domain);
}

static const struct iommu_domain_ops iopf_mock_sva_domain_ops = {
	.set_dev_pasid = iopf_mock_set_dev_pasid,
	.free = iopf_mock_sva_domain_free,
};

/*
 * The core's iommu_sva_domain_alloc() makes it an SVA domain of @mm and sets
 * its iopf_handler; iommu_domain_free() frees it through ops->free.
 */
static struct iommu_domain *
iopf_mock_domain_alloc_sva(struct device *dev, struct mm_struct *mm)
{
	struct iommu_domain *domain;

	domain = kzalloc_obj(*domain);
	if (!domain)
		return ERR_PTR(-ENOMEM);
	domain->ops = &iopf_mock_sva_domain_ops;

	return domain;
}

/* Shared by every mock IOMMU: default, blocking and PASID-removal domain. */
static struct iommu_domain iopf_mock_blocked_domain = {
	.type = IOMMU_DOMAIN_BLOCKED,
	.ops = &iopf_mock_domain_ops,
};

static struct iommu_device *iopf_mock_probe_device(struct device *dev)
{
	struct iopf_mock_dev *mdev = to_iopf_mock_dev(dev);

	if (!mdev)
		return ERR_PTR(-ENODEV);
	return &mdev->mock->iommu;
}

static void iopf_mock_page_response(struct device *dev, struct iopf_fault *evt,
				    struct iommu_page_response *msg)
{
	struct iopf_mock_dev *mdev = to_iopf_mock_dev(dev);

	iopf_mock_tap_fn tap;

	if (!mdev)
		return;
	iopf_mock_log_add(mdev->mock->log, dev, evt, msg);
	tap = READ_ONCE(mdev->mock->tap);
	if (tap)
		tap(mdev->mock->tap_data, dev, evt, msg);
}

static void iopf_mock_iommu_destroy(void *data)
{
	struct iopf_mock_iommu *mock = data;

	iommu_device_unregister_bus(&mock->iommu, &mock->bus, &mock->nb);
	iommu_device_sysfs_remove(&mock->iommu);
	bus_unregister(&mock->bus);
}

/**
 * iopf_mock_iommu_create() - Register a mock IOMMU on a bus of its own
 * @test: the test owning the IOMMU
 * @flags: IOPF_MOCK_USER_PASID_TABLE, IOPF_MOCK_NO_PAGE_RESPONSE, IOPF_MOCK_SVA
 * @log: where page_response records the responses (may be shared by several
 *       mock IOMMUs)
 *
 * The IOMMU is unregistered, and its bus with it, when the test ends. Devices
 * created on it must be gone by then, which the reverse-order release of test
 * resources guarantees.
 *
 * Return: the mock IOMMU; asserts on failure.
 */
struct iopf_mock_iommu *iopf_mock_iommu_create(struct kunit *test,
					       unsigned int flags,
					       struct iopf_mock_log *log)
{
	struct iopf_mock_iommu *mock;
	int ret;

	mock = kunit_kzalloc(test, sizeof(*mock), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, mock);

	mock->log = log;
	atomic_set(&mock->next_dev, 0);
	snprintf(mock->name, sizeof(mock->name), "iopf_mock%d",
		 atomic_inc_return(&iopf_mock_next_id));
	mock->bus.name = mock->name;

	mock->ops.owner = THIS_MODULE;
	mock->ops.default_domain = &iopf_mock_blocked_domain;
	mock->ops.blocked_domain = &iopf_mock_blocked_domain;
	mock->ops.device_group = generic_device_group;
	mock->ops.probe_device = iopf_mock_probe_device;
	if (!(flags & IOPF_MOCK_NO_PAGE_RESPONSE))
		mock->ops.page_response = iopf_mock_page_response;
	mock->ops.user_pasid_table = !!(flags & IOPF_MOCK_USER_PASID_TABLE);
	if (flags & IOPF_MOCK_SVA)
		mock->ops.domain_alloc_sva = iopf_mock_domain_alloc_sva;
	mock->iommu.max_pasids = 1U << IOPF_MOCK_PASID_BITS;

	ret = bus_register(&mock->bus);
	KUNIT_ASSERT_EQ(test, ret, 0);

	ret = iommu_device_sysfs_add(&mock->iommu, NULL, NULL, "%s",
				     mock->name);
	if (ret) {
		bus_unregister(&mock->bus);
		KUNIT_ASSERT_EQ(test, ret, 0);
	}

	ret = iommu_device_register_bus(&mock->iommu, &mock->ops, &mock->bus,
					&mock->nb);
	if (ret) {
		iommu_device_sysfs_remove(&mock->iommu);
		bus_unregister(&mock->bus);
		KUNIT_ASSERT_EQ(test, ret, 0);
	}

	ret = kunit_add_action_or_reset(test, iopf_mock_iommu_destroy, mock);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return mock;
}

/**
 * iopf_mock_iommu_set_tap() - Also pass every page response to a function
 * @mock: the mock IOMMU
 * @fn: called after the response is logged, in page_response()'s context
 *      (it may sleep only if every caller of page_response may)
 * @data: first argument of @fn
 *
 * Set it before faults are reported on the mock's devices.
 */
void iopf_mock_iommu_set_tap(struct iopf_mock_iommu *mock, iopf_mock_tap_fn fn,
			     void *data)
{
	mock->tap_data = data;
	WRITE_ONCE(mock->tap, fn);
}

/**
 * iopf_mock_release_removed_group() - Free a group after its device's removal
 * @group: a group that its handler kept pending, and that
 *         iopf_queue_remove_device() answered
 *
 * io-pgfault.c frees the pending groups of a device it removes; the Rust core
 * answers them but leaves them to their handlers, who may still be using them
 * (a work item queued and not run yet), and who free them. The response of
 * the handler, if it sends one, is dropped.
 */
void iopf_mock_release_removed_group(struct iopf_group *group)
{
	if (IS_ENABLED(CONFIG_IOMMU_IOPF_RUST))
		iopf_free_group(group);
}

KUNIT_DEFINE_ACTION_WRAPPER(iopf_mock_dev_unregister, device_unregister,
			    struct device *);

/**
 * iopf_mock_dev_create() - Create a device behind a mock IOMMU
 * @test: the test owning the device
 * @mock: the mock IOMMU
 *
 * The device is added to the mock's bus, which makes the IOMMU core probe it:
 * on return it has dev->iommu, an iommu_group of its own, and supports
 * IOPF_MOCK_PASID_BITS bits of PASID. It is unregistered when the test ends.
 *
 * Return: the device; asserts on failure.
 */
struct device *iopf_mock_dev_create(struct kunit *test,
				    struct iopf_mock_iommu *mock)
{
	const struct property_entry props[] = {
		PROPERTY_ENTRY_U32("pasid-num-bits", IOPF_MOCK_PASID_BITS),
		{ }
	};
	struct iopf_mock_dev *mdev;
	struct device *dev;
	int ret;

	mdev = kzalloc_obj(*mdev);
	KUNIT_ASSERT_NOT_NULL(test, mdev);

	mdev->mock = mock;
	dev = &mdev->dev;
	device_initialize(dev);
	dev->release = iopf_mock_dev_release;
	dev->bus = &mock->bus;

	ret = dev_set_name(dev, "%s-dev%d", mock->name,
			   atomic_inc_return(&mock->next_dev));
	if (ret)
		goto err_put;

	ret = device_create_managed_software_node(dev, props, NULL);
	if (ret)
		goto err_put;

	ret = iommu_mock_device_add(dev, &mock->iommu);
	if (ret)
		goto err_put;

	ret = kunit_add_action_or_reset(test, iopf_mock_dev_unregister, dev);
	KUNIT_ASSERT_EQ(test, ret, 0);

	KUNIT_ASSERT_NOT_NULL(test, dev->iommu);
	KUNIT_ASSERT_NOT_NULL(test, dev->iommu_group);

	return dev;

err_put:
	put_device(dev);
	KUNIT_ASSERT_EQ(test, ret, 0);
	return NULL;
}

/**
 * iopf_mock_domain_alloc() - Allocate a domain of a mock IOMMU
 * @test: the test owning the domain
 * @mock: the mock IOMMU
 * @type: IOMMU_DOMAIN_UNMANAGED or IOMMU_DOMAIN_NESTED
 * @iopf_handler: the domain's I/O page fault handler, or NULL for none
 *
 * The domain is freed when the test ends; it must be detached by then, which
 * holds when it is attached after being allocated (detach actions run first).
 *
 * Return: the domain; asserts on failure.
 */
struct iommu_domain *
iopf_mock_domain_alloc(struct kunit *test, struct iopf_mock_iommu *mock,
		       unsigned int type,
		       int (*iopf_handler)(struct iopf_group *group))
{
	struct iommu_domain *domain;

	domain = kunit_kzalloc(test, sizeof(*domain), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, domain);

	domain->type = type;
	domain->cookie_type = IOMMU_COOKIE_NONE;
	domain->ops = &iopf_mock_domain_ops;
	domain->owner = &mock->ops;
	domain->pgsize_bitmap = SZ_4K;
	domain->iopf_handler = iopf_handler;

	return domain;
}

/**
 * iopf_mock_attach_handle() - Attach a domain with a handle, untracked
 * @domain: a domain of the device's mock IOMMU
 * @dev: a mock device
 * @pasid: the PASID, or IOMMU_NO_PASID for the RID
 * @handle: the attach handle, stored on @pasid of the device's group
 *
 * For tests that attach and detach more often than the test's resources
 * should grow: the caller detaches (iopf_mock_detach_handle()) before the
 * test ends.
 *
 * Return: what iommu_attach_group_handle() or iommu_attach_device_pasid()
 * returned.
 */
int iopf_mock_attach_handle(struct iommu_domain *domain, struct device *dev,
			    ioasid_t pasid, struct iommu_attach_handle *handle)
{
	if (pasid == IOMMU_NO_PASID)
		return iommu_attach_group_handle(domain, dev->iommu_group,
						 handle);
	return iommu_attach_device_pasid(domain, dev, pasid, handle);
}

/**
 * iopf_mock_detach_handle() - Detach a domain of iopf_mock_attach_handle()
 * @domain: the domain
 * @dev: the device
 * @pasid: the PASID it is attached to, or IOMMU_NO_PASID for the RID
 */
void iopf_mock_detach_handle(struct iommu_domain *domain, struct device *dev,
			     ioasid_t pasid)
{
	if (pasid == IOMMU_NO_PASID)
		iommu_detach_group_handle(domain, dev->iommu_group);
	else
		iommu_detach_device_pasid(domain, dev, pasid);
}

static void iopf_mock_detach_action(void *data)
{
	struct iopf_mock_attach *attach = data;

	iopf_mock_detach_handle(attach->domain, attach->dev,
				attach->rid ? IOMMU_NO_PASID : attach->pasid);
}

static struct iopf_mock_attach *
iopf_mock_attach_alloc(struct kunit *test, struct iommu_domain *domain,
		       struct device *dev, ioasid_t pasid, bool rid)
{
	struct iopf_mock_attach *attach;

	attach = kunit_kzalloc(test, sizeof(*attach), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, attach);
	attach->domain = domain;
	attach->dev = dev;
	attach->pasid = pasid;
	attach->rid = rid;

	return attach;
}

/**
 * iopf_mock_attach_rid() - Attach a domain to a device's RID with a handle
 * @test: the test owning the attachment
 * @domain: a domain of the device's mock IOMMU
 * @dev: a mock device
 * @handle: the attach handle, stored on IOMMU_NO_PASID of the device's group
 *
 * Uses iommu_attach_group_handle(). Detached when the test ends or by
 * iopf_mock_detach().
 *
 * Return: the attachment; asserts on failure.
 */
struct iopf_mock_attach *
iopf_mock_attach_rid(struct kunit *test, struct iommu_domain *domain,
		     struct device *dev, struct iommu_attach_handle *handle)
{
	struct iopf_mock_attach *attach;
	int ret;

	attach = iopf_mock_attach_alloc(test, domain, dev, IOMMU_NO_PASID,
					true);
	ret = iopf_mock_attach_handle(domain, dev, IOMMU_NO_PASID, handle);
	KUNIT_ASSERT_EQ(test, ret, 0);
	ret = kunit_add_action_or_reset(test, iopf_mock_detach_action, attach);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return attach;
}

/**
 * iopf_mock_attach_pasid() - Attach a domain to a PASID of a device
 * @test: the test owning the attachment
 * @domain: a domain of the device's mock IOMMU
 * @dev: a mock device
 * @pasid: the PASID, not IOMMU_NO_PASID
 * @handle: the attach handle, stored on @pasid of the device's group
 *
 * Uses iommu_attach_device_pasid(). Detached when the test ends or by
 * iopf_mock_detach().
 *
 * Return: the attachment; asserts on failure.
 */
struct iopf_mock_attach *
iopf_mock_attach_pasid(struct kunit *test, struct iommu_domain *domain,
		       struct device *dev, ioasid_t pasid,
		       struct iommu_attach_handle *handle)
{
	struct iopf_mock_attach *attach;
	int ret;

	attach = iopf_mock_attach_alloc(test, domain, dev, pasid, false);
	ret = iopf_mock_attach_handle(domain, dev, pasid, handle);
	KUNIT_ASSERT_EQ(test, ret, 0);
	ret = kunit_add_action_or_reset(test, iopf_mock_detach_action, attach);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return attach;
}

/**
 * iopf_mock_detach() - Detach now instead of at the end of the test
 * @test: the test owning the attachment
 * @attach: an attachment made by iopf_mock_attach_rid() or
 *          iopf_mock_attach_pasid()
 */
void iopf_mock_detach(struct kunit *test, struct iopf_mock_attach *attach)
{
	kunit_release_action(test, iopf_mock_detach_action, attach);
}
