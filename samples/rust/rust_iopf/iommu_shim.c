// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of the Rust IOPF sample's mock IOMMU.
 *
 * Why C: an IOMMU driver registers a const struct iommu_ops and its domains'
 * struct iommu_domain_ops with the IOMMU core, and Rust in 7.3 has no
 * abstraction for either. Worse, a mock IOMMU must not claim the machine's
 * real devices, and the only way to register an IOMMU for a bus of fake
 * devices is iommu_device_register_bus() and iommu_mock_device_add(), which
 * live in drivers/iommu/iommu-priv.h (bindgen does not see them) and exist
 * for the iommufd selftest only (CONFIG_IOMMUFD_TEST). So this file does the
 * registration, the same way as the iommufd selftest's mock and the iopf
 * KUnit suite's mock do, and nothing about I/O page faults: the fault queue,
 * the reporting, the page response and the fault handler are Rust, through
 * kernel::iommu::fault (mock_iommu.rs, consumer.rs).
 *
 * Endpoints sit on a private bus, each in an iommu_group of its own; domains
 * do not translate (attach is a no-op), they only carry an iopf_handler.
 */
#include <linux/device.h>
#include <linux/err.h>
#include <linux/iommu.h>
#include <linux/slab.h>
#include <linux/sizes.h>

#include "../../../drivers/iommu/iommu-priv.h"
#include "iommu_shim.h"

struct rust_iopf_iommu {
	struct bus_type bus;
	struct notifier_block nb;
	struct iommu_ops ops;
	struct iommu_device iommu;
};

struct rust_iopf_endpoint {
	struct device dev;
	struct rust_iopf_iommu *iommu;
	/* The RID attach handle the IOPF core finds the domain through. */
	struct iommu_attach_handle handle;
};

static int rust_iopf_attach_dev(struct iommu_domain *domain,
				struct device *dev, struct iommu_domain *old)
{
	return 0;
}

static const struct iommu_domain_ops rust_iopf_domain_ops = {
	.attach_dev = rust_iopf_attach_dev,
};

/* The default and blocking domain of every endpoint. */
static struct iommu_domain rust_iopf_blocked_domain = {
	.type = IOMMU_DOMAIN_BLOCKED,
	.ops = &rust_iopf_domain_ops,
};

static void rust_iopf_endpoint_release(struct device *dev)
{
	kfree(container_of(dev, struct rust_iopf_endpoint, dev));
}

static struct iommu_device *rust_iopf_probe_device(struct device *dev)
{
	struct rust_iopf_endpoint *ep;

	if (dev->release != rust_iopf_endpoint_release)
		return ERR_PTR(-ENODEV);
	ep = container_of(dev, struct rust_iopf_endpoint, dev);
	return &ep->iommu->iommu;
}

/**
 * rust_iopf_iommu_register() - Register the mock IOMMU on a bus of its own
 * @parent: the device of the IOMMU (the sample's faux device), or NULL
 * @name: the name of the IOMMU and of its bus; unique, and kept by the caller
 * @page_response: the driver's page_response op
 *
 * Return: the IOMMU, or an ERR_PTR().
 */
struct rust_iopf_iommu *
rust_iopf_iommu_register(struct device *parent, const char *name,
			 rust_iopf_page_response_t page_response)
{
	struct rust_iopf_iommu *iommu;
	int ret;

	iommu = kzalloc_obj(*iommu);
	if (!iommu)
		return ERR_PTR(-ENOMEM);

	iommu->bus.name = name;
	/* ANCHOR: ops */
	iommu->ops.owner = THIS_MODULE;
	iommu->ops.default_domain = &rust_iopf_blocked_domain;
	iommu->ops.blocked_domain = &rust_iopf_blocked_domain;
	iommu->ops.device_group = generic_device_group;
	iommu->ops.probe_device = rust_iopf_probe_device;
	iommu->ops.page_response = page_response;
	/* ANCHOR_END: ops */

	ret = bus_register(&iommu->bus);
	if (ret)
		goto err_free;
	ret = iommu_device_sysfs_add(&iommu->iommu, parent, NULL, "%s", name);
	if (ret)
		goto err_bus;
	ret = iommu_device_register_bus(&iommu->iommu, &iommu->ops, &iommu->bus,
					&iommu->nb);
	if (ret)
		goto err_sysfs;
	return iommu;

err_sysfs:
	iommu_device_sysfs_remove(&iommu->iommu);
err_bus:
	bus_unregister(&iommu->bus);
err_free:
	kfree(iommu);
	return ERR_PTR(ret);
}

/**
 * rust_iopf_iommu_unregister() - Unregister the mock IOMMU
 * @iommu: the IOMMU; its endpoints must be gone
 */
void rust_iopf_iommu_unregister(struct rust_iopf_iommu *iommu)
{
	iommu_device_unregister_bus(&iommu->iommu, &iommu->bus, &iommu->nb);
	iommu_device_sysfs_remove(&iommu->iommu);
	bus_unregister(&iommu->bus);
	kfree(iommu);
}

/**
 * rust_iopf_endpoint_add() - Add an endpoint device behind the mock IOMMU
 * @iommu: the IOMMU
 * @index: the endpoint's number, in its name (<iommu name>_ep<index>)
 *
 * The IOMMU core probes it: on success it has dev->iommu and an iommu_group.
 *
 * Return: the device, or an ERR_PTR().
 */
struct device *rust_iopf_endpoint_add(struct rust_iopf_iommu *iommu,
				      unsigned int index)
{
	struct rust_iopf_endpoint *ep;
	int ret;

	ep = kzalloc_obj(*ep);
	if (!ep)
		return ERR_PTR(-ENOMEM);

	ep->iommu = iommu;
	device_initialize(&ep->dev);
	ep->dev.release = rust_iopf_endpoint_release;
	ep->dev.bus = &iommu->bus;
	ret = dev_set_name(&ep->dev, "%s_ep%u", iommu->bus.name, index);
	if (ret)
		goto err_put;
	ret = iommu_mock_device_add(&ep->dev, &iommu->iommu);
	if (ret)
		goto err_put;
	if (!ep->dev.iommu_group) {
		device_unregister(&ep->dev);
		return ERR_PTR(-ENODEV);
	}
	return &ep->dev;

err_put:
	put_device(&ep->dev);
	return ERR_PTR(ret);
}

/**
 * rust_iopf_endpoint_remove() - Remove an endpoint added by rust_iopf_endpoint_add()
 * @dev: the endpoint; no domain is attached to it any more
 */
void rust_iopf_endpoint_remove(struct device *dev)
{
	device_unregister(dev);
}

/**
 * rust_iopf_domain_alloc() - Allocate a domain of the mock IOMMU
 * @iommu: the IOMMU
 * @iopf_handler: the domain's I/O page fault handler
 *
 * Return: the domain, or NULL.
 */
struct iommu_domain *rust_iopf_domain_alloc(struct rust_iopf_iommu *iommu,
					    rust_iopf_handler_t iopf_handler)
{
	struct iommu_domain *domain;

	domain = kzalloc_obj(*domain);
	if (!domain)
		return NULL;

	domain->type = IOMMU_DOMAIN_UNMANAGED;
	domain->cookie_type = IOMMU_COOKIE_NONE;
	domain->ops = &rust_iopf_domain_ops;
	domain->owner = &iommu->ops;
	domain->pgsize_bitmap = SZ_4K;
	domain->iopf_handler = iopf_handler;
	return domain;
}

/**
 * rust_iopf_domain_free() - Free a domain; it is attached nowhere
 * @domain: the domain
 */
void rust_iopf_domain_free(struct iommu_domain *domain)
{
	kfree(domain);
}

/**
 * rust_iopf_domain_attach() - Attach a domain to an endpoint's RID
 * @domain: a domain of the endpoint's IOMMU
 * @dev: the endpoint
 *
 * With an attach handle, through which the IOPF core finds @domain's
 * iopf_handler for the endpoint's page requests without PASID.
 *
 * Return: 0 or an error from iommu_attach_group_handle().
 */
int rust_iopf_domain_attach(struct iommu_domain *domain, struct device *dev)
{
	struct rust_iopf_endpoint *ep =
		container_of(dev, struct rust_iopf_endpoint, dev);

	return iommu_attach_group_handle(domain, dev->iommu_group, &ep->handle);
}

/**
 * rust_iopf_domain_detach() - Detach a domain attached by rust_iopf_domain_attach()
 * @domain: the domain
 * @dev: the endpoint
 *
 * Page requests reported after this get no handler and are answered INVALID;
 * groups already handed to the handler are still the handler's.
 */
void rust_iopf_domain_detach(struct iommu_domain *domain, struct device *dev)
{
	iommu_detach_group_handle(domain, dev->iommu_group);
}
