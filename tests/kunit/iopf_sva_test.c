// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite for the I/O page fault handler of SVA domains.
 *
 * Each case gives its test thread an address space of its own
 * (kunit_attach_mm(), kunit_vm_mmap()) and binds it to a PASID of a mock
 * device with iommu_sva_bind_device(). The bind allocates a real SVA domain
 * through the mock IOMMU's domain_alloc_sva, and iommu-sva.c installs its
 * iopf_handler: the C one, or with CONFIG_IOMMU_IOPF_RUST the Rust one
 * (drivers/iommu/iommu_sva_iopf.rs). The cases are the same for both.
 *
 * Page requests on that PASID go through iommu_report_device_fault() to the
 * handler, which resolves them against the address space from the IOPF
 * queue's workqueue; iopf_queue_flush_dev() waits for it, and the mock's
 * page_response log shows the answer. Whether a page is present is read with
 * get_user_pages_fast_only(), which never faults a page in.
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/iommu.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>

#include "iopf_mock_iommu.h"

#define IOPF_SVA_LOG_SIZE	32

struct iopf_sva_env {
	struct iopf_mock_log *log;
	struct device *dev;
	struct iopf_queue *queue;
	struct iommu_sva *sva;
	u32 pasid;
	u32 next_grpid;
};

KUNIT_DEFINE_ACTION_WRAPPER(iopf_sva_queue_free, iopf_queue_free,
			    struct iopf_queue *);
KUNIT_DEFINE_ACTION_WRAPPER(iopf_sva_unbind, iommu_sva_unbind_device,
			    struct iommu_sva *);

/* Flush first, as drivers do: no work item may outlive the removal. */
static void iopf_sva_remove_device(void *data)
{
	struct iopf_sva_env *env = data;

	iopf_queue_flush_dev(env->dev);
	iopf_queue_remove_device(env->queue, env->dev);
}

/*
 * A mock device whose PASID is bound to the test thread's address space, on
 * an IOPF queue. Teardown runs in reverse: the device leaves the queue (its
 * faults flushed) before the bond, and so the SVA domain, goes away.
 */
static struct iopf_sva_env *iopf_sva_setup(struct kunit *test)
{
	struct iopf_sva_env *env = test->priv;
	struct iopf_mock_iommu *mock;
	struct iommu_domain *domain;
	int ret;

	mock = iopf_mock_iommu_create(test, IOPF_MOCK_SVA, env->log);
	env->dev = iopf_mock_dev_create(test, mock);

	env->queue = iopf_queue_alloc("iopf-sva-kunit");
	KUNIT_ASSERT_NOT_NULL(test, env->queue);
	ret = kunit_add_action_or_reset(test, iopf_sva_queue_free, env->queue);
	KUNIT_ASSERT_EQ(test, ret, 0);

	ret = kunit_attach_mm();
	KUNIT_ASSERT_EQ(test, ret, 0);
	KUNIT_ASSERT_NOT_NULL(test, current->mm);

	env->sva = iommu_sva_bind_device(env->dev, current->mm);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(env->sva), "bind: %pe", env->sva);
	ret = kunit_add_action_or_reset(test, iopf_sva_unbind, env->sva);
	KUNIT_ASSERT_EQ(test, ret, 0);

	domain = env->sva->handle.domain;
	KUNIT_ASSERT_EQ(test, domain->type, IOMMU_DOMAIN_SVA);
	KUNIT_ASSERT_PTR_EQ(test, domain->mm, current->mm);
	KUNIT_ASSERT_NOT_NULL(test, domain->iopf_handler);
	env->pasid = iommu_sva_get_pasid(env->sva);
	KUNIT_ASSERT_NE(test, env->pasid, IOMMU_PASID_INVALID);

	ret = iopf_queue_add_device(env->queue, env->dev);
	KUNIT_ASSERT_EQ(test, ret, 0);
	ret = kunit_add_action_or_reset(test, iopf_sva_remove_device, env);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return env;
}

/* @npages anonymous private pages of the test's address space, untouched. */
static unsigned long iopf_sva_map(struct kunit *test, unsigned long npages,
				  unsigned long prot)
{
	unsigned long addr;

	addr = kunit_vm_mmap(test, NULL, 0, npages * PAGE_SIZE, prot,
			     MAP_PRIVATE | MAP_ANONYMOUS, 0);
	KUNIT_ASSERT_NE(test, addr, 0);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR_VALUE(addr), "mmap: %ld",
			       (long)addr);

	return addr;
}

/* A page is mapped at @addr (the zero page, mapped by read faults, is not seen). */
static bool iopf_sva_present(unsigned long addr)
{
	struct page *page;

	if (get_user_pages_fast_only(addr, 1, 0, &page) != 1)
		return false;
	put_page(page);

	return true;
}

static struct iopf_fault iopf_sva_fault(struct iopf_sva_env *env,
					unsigned long addr, u32 perm,
					u32 grpid, bool last)
{
	struct iopf_fault evt = {};

	evt.fault.type = IOMMU_FAULT_PAGE_REQ;
	evt.fault.prm.flags = IOMMU_FAULT_PAGE_REQUEST_PASID_VALID |
			      IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;
	if (last)
		evt.fault.prm.flags |= IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
	evt.fault.prm.pasid = env->pasid;
	evt.fault.prm.grpid = grpid;
	evt.fault.prm.perm = perm;
	evt.fault.prm.addr = addr;
	INIT_LIST_HEAD(&evt.list);

	return evt;
}

static void iopf_sva_report(struct kunit *test, struct iopf_sva_env *env,
			    struct iopf_fault *evt)
{
	KUNIT_EXPECT_EQ_MSG(test, iommu_report_device_fault(env->dev, evt), 0,
			    "report of %#llx", evt->fault.prm.addr);
}

/*
 * Wait for the handler, check that exactly one response was sent since
 * @before, for the group of @last, and return its code.
 */
static u32 iopf_sva_response(struct kunit *test, struct iopf_sva_env *env,
			     unsigned int before, const struct iopf_fault *last)
{
	struct iopf_mock_resp r;

	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(env->dev), 0);
	KUNIT_ASSERT_EQ_MSG(test, iopf_mock_log_count(env->log), before + 1,
			    "responses to the group of %#llx",
			    last->fault.prm.addr);
	KUNIT_ASSERT_TRUE(test, iopf_mock_log_get(env->log, before, &r));
	KUNIT_EXPECT_PTR_EQ(test, r.dev, env->dev);
	KUNIT_EXPECT_EQ(test, r.msg.pasid, env->pasid);
	KUNIT_EXPECT_EQ(test, r.msg.grpid, last->fault.prm.grpid);
	KUNIT_ASSERT_TRUE(test, r.has_evt);
	KUNIT_EXPECT_EQ(test, r.fault.prm.addr, last->fault.prm.addr);

	return r.msg.code;
}

/* A one-page group at @addr with @perm; returns the response code. */
static u32 iopf_sva_request(struct kunit *test, struct iopf_sva_env *env,
			    unsigned long addr, u32 perm)
{
	unsigned int before = iopf_mock_log_count(env->log);
	struct iopf_fault evt;

	evt = iopf_sva_fault(env, addr, perm, env->next_grpid++, true);
	iopf_sva_report(test, env, &evt);

	return iopf_sva_response(test, env, before, &evt);
}

#define RW	(IOMMU_FAULT_PERM_READ | IOMMU_FAULT_PERM_WRITE)

/* Cases */

/* A device write to a mapped, untouched page faults it in. */
static void iopf_sva_test_fault_in(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	unsigned long addr = iopf_sva_map(test, 2, PROT_READ | PROT_WRITE);

	KUNIT_ASSERT_FALSE_MSG(test, iopf_sva_present(addr),
			       "untouched page already present");
	KUNIT_EXPECT_EQ(test, iopf_sva_request(test, env, addr + 0x80, RW),
			IOMMU_PAGE_RESP_SUCCESS);
	KUNIT_EXPECT_TRUE_MSG(test, iopf_sva_present(addr),
			      "page not present after SUCCESS");
	/*
	 * A read of an untouched page is resolved too, with the shared zero
	 * page, which get_user_pages_fast_only() does not report.
	 */
	KUNIT_EXPECT_EQ(test, iopf_sva_request(test, env, addr + PAGE_SIZE,
					       IOMMU_FAULT_PERM_READ),
			IOMMU_PAGE_RESP_SUCCESS);
}

/* Each of read, write and exec is checked against the vma. */
static void iopf_sva_test_permissions(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	unsigned long ro = iopf_sva_map(test, 1, PROT_READ);
	unsigned long rx = iopf_sva_map(test, 1, PROT_READ | PROT_EXEC);
	unsigned long none = iopf_sva_map(test, 1, PROT_NONE);

	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, ro, RW),
			    IOMMU_PAGE_RESP_INVALID, "write to read-only");
	KUNIT_EXPECT_FALSE_MSG(test, iopf_sva_present(ro),
			       "a refused write faulted the page in");
	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, ro,
						   IOMMU_FAULT_PERM_READ |
						   IOMMU_FAULT_PERM_EXEC),
			    IOMMU_PAGE_RESP_INVALID, "exec of non-exec");
	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, ro,
						   IOMMU_FAULT_PERM_READ),
			    IOMMU_PAGE_RESP_SUCCESS, "read of read-only");
	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, rx,
						   IOMMU_FAULT_PERM_READ |
						   IOMMU_FAULT_PERM_EXEC),
			    IOMMU_PAGE_RESP_SUCCESS, "exec of exec");
	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, none,
						   IOMMU_FAULT_PERM_READ),
			    IOMMU_PAGE_RESP_INVALID, "read of PROT_NONE");
}

/* An address with no vma is refused; its neighbours are not. */
static void iopf_sva_test_unmapped(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	unsigned long addr = iopf_sva_map(test, 3, PROT_READ | PROT_WRITE);
	unsigned long hole = addr + PAGE_SIZE;

	KUNIT_ASSERT_EQ(test, vm_munmap(hole, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, iopf_sva_request(test, env, hole, RW),
			IOMMU_PAGE_RESP_INVALID);
	KUNIT_EXPECT_EQ(test, iopf_sva_request(test, env, addr, RW),
			IOMMU_PAGE_RESP_SUCCESS);
}

/*
 * A fault that handle_mm_fault() cannot resolve (VM_FAULT_ERROR) is refused:
 * a shared mapping of a one-page shmem file, two pages long, has SIGBUS
 * (VM_FAULT_SIGBUS) behind the end of the file.
 */
static void iopf_sva_test_fault_error(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	struct file *file;
	unsigned long addr;

	file = shmem_file_setup("iopf_sva_test", PAGE_SIZE, EMPTY_VMA_FLAGS);
	KUNIT_ASSERT_FALSE_MSG(test, IS_ERR(file), "shmem file: %pe", file);
	addr = kunit_vm_mmap(test, file, 0, 2 * PAGE_SIZE,
			     PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	/* The mapping holds its own reference to the file. */
	fput(file);
	KUNIT_ASSERT_NE(test, addr, 0);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));

	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, addr + PAGE_SIZE, RW),
			    IOMMU_PAGE_RESP_INVALID, "page past the end of file");
	KUNIT_EXPECT_EQ_MSG(test, iopf_sva_request(test, env, addr, RW),
			    IOMMU_PAGE_RESP_SUCCESS, "page of the file");
	KUNIT_EXPECT_TRUE(test, iopf_sva_present(addr));
}

/* Report @n pages from @addrs as one group; returns the response code. */
static u32 iopf_sva_group(struct kunit *test, struct iopf_sva_env *env,
			  const unsigned long *addrs, unsigned int n)
{
	unsigned int i, before = iopf_mock_log_count(env->log);
	u32 grpid = env->next_grpid++;
	struct iopf_fault evt = {};

	for (i = 0; i < n; i++) {
		evt = iopf_sva_fault(env, addrs[i], RW, grpid, i == n - 1);
		iopf_sva_report(test, env, &evt);
	}

	return iopf_sva_response(test, env, before, &evt);
}

/* A group of good pages: every page faulted in, one SUCCESS. */
static void iopf_sva_test_group(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	unsigned long base = iopf_sva_map(test, 3, PROT_READ | PROT_WRITE);
	unsigned long addrs[] = { base, base + PAGE_SIZE, base + 2 * PAGE_SIZE };
	unsigned int i;

	KUNIT_EXPECT_EQ(test, iopf_sva_group(test, env, addrs, ARRAY_SIZE(addrs)),
			IOMMU_PAGE_RESP_SUCCESS);
	for (i = 0; i < ARRAY_SIZE(addrs); i++)
		KUNIT_EXPECT_TRUE_MSG(test, iopf_sva_present(addrs[i]),
				      "page %u not present", i);
}

/*
 * A group with an unmapped page: the pages before it are faulted in, the
 * ones after it are skipped, and the group gets one INVALID.
 */
static void iopf_sva_test_group_bad_page(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	unsigned long base = iopf_sva_map(test, 4, PROT_READ | PROT_WRITE);
	unsigned long addrs[] = { base, base + PAGE_SIZE, base + 2 * PAGE_SIZE,
				  base + 3 * PAGE_SIZE };

	KUNIT_ASSERT_EQ(test, vm_munmap(addrs[2], PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, iopf_sva_group(test, env, addrs, ARRAY_SIZE(addrs)),
			IOMMU_PAGE_RESP_INVALID);
	KUNIT_EXPECT_TRUE(test, iopf_sva_present(addrs[0]));
	KUNIT_EXPECT_TRUE(test, iopf_sva_present(addrs[1]));
	KUNIT_EXPECT_FALSE_MSG(test, iopf_sva_present(addrs[3]),
			       "a page after the failure was faulted in");
}

/*
 * The process's address space is gone (its last user dropped it) while the
 * bond holds the mm: faults are refused, not resolved.
 */
static void iopf_sva_test_exited_mm(struct kunit *test)
{
	struct iopf_sva_env *env = iopf_sva_setup(test);
	unsigned long addr = iopf_sva_map(test, 1, PROT_READ | PROT_WRITE);
	struct mm_struct *mm = current->mm;

	KUNIT_ASSERT_EQ(test, atomic_read(&mm->mm_users), 1);
	/* What exit_mm() does for the test thread, now. */
	kthread_unuse_mm(mm);
	mmput(mm);

	KUNIT_EXPECT_EQ(test, iopf_sva_request(test, env, addr, RW),
			IOMMU_PAGE_RESP_INVALID);
}

/* Suite */

static int iopf_sva_test_init(struct kunit *test)
{
	struct iopf_sva_env *env;

	env = kunit_kzalloc(test, sizeof(*env), GFP_KERNEL);
	if (!env)
		return -ENOMEM;
	env->log = iopf_mock_log_alloc(test, IOPF_SVA_LOG_SIZE);
	env->next_grpid = 1;
	test->priv = env;

	return 0;
}

static struct kunit_case iopf_sva_test_cases[] = {
	KUNIT_CASE(iopf_sva_test_fault_in),
	KUNIT_CASE(iopf_sva_test_permissions),
	KUNIT_CASE(iopf_sva_test_unmapped),
	KUNIT_CASE(iopf_sva_test_fault_error),
	KUNIT_CASE(iopf_sva_test_group),
	KUNIT_CASE(iopf_sva_test_group_bad_page),
	KUNIT_CASE(iopf_sva_test_exited_mm),
	{}
};

static struct kunit_suite iopf_sva_test_suite = {
	.name = "iopf_sva",
	.init = iopf_sva_test_init,
	.test_cases = iopf_sva_test_cases,
};

kunit_test_suite(iopf_sva_test_suite);
