// SPDX-License-Identifier: GPL-2.0
/*
 * Black-box KUnit suite for the IOMMU I/O page fault framework.
 *
 * Runs unchanged on the upstream C implementation (drivers/iommu/io-pgfault.c)
 * and on its Rust replacement (CONFIG_IOMMU_IOPF_RUST): it only uses the
 * public API of <linux/iommu.h> and the IOMMU core. struct iommu_fault_param
 * and struct iopf_queue are never dereferenced; of struct iopf_group only the
 * public fields (last_fault, faults, fault_count, attach_handle, work) are
 * read.
 *
 * Faults are reported on devices of a mock IOMMU (iopf_mock_iommu.c) whose
 * page_response op records every response. Each case checks that every
 * last-page request got exactly one response, with the right code, PASID and
 * group index, and that nothing is left pending at the end.
 *
 * None of the cases reaches a WARN_ON() of the C implementation (report with
 * a fault handler but no IOPF queue, flush or remove of a device that is not
 * on the queue): the test runner fails on any "WARNING:".
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/iommu.h>
#include <linux/kthread.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "iopf_mock_iommu.h"

#define IOPF_TEST_LOG_SIZE		512
#define IOPF_TEST_MAX_DEVS		4
#define IOPF_TEST_MAX_DELIVERIES	16
#define IOPF_TEST_MAX_GROUP_FAULTS	8U
#define IOPF_TEST_MAX_KEPT		16

/* What the iopf_handler of a test handle does with a group. */
enum iopf_test_mode {
	/* iopf_group_response(code) and iopf_free_group() before returning */
	IOPF_TEST_ANSWER,
	/* iopf_queue_work(); the work item responds with code and frees */
	IOPF_TEST_DEFER,
	/* return an error */
	IOPF_TEST_FAIL,
	/* keep the group in kept[] (after iopf_group_dequeue() if dequeue) */
	IOPF_TEST_KEEP,
};

/* A snapshot of a group as the handler saw it. */
struct iopf_test_delivery {
	size_t fault_count;
	unsigned int nfaults;
	struct iommu_fault faults[IOPF_TEST_MAX_GROUP_FAULTS];
	struct iommu_fault last;
};

struct iopf_test_handle {
	struct iommu_attach_handle handle;
	struct iopf_mock_attach *attach;

	/* Behaviour, set by the test */
	enum iopf_test_mode mode;
	enum iommu_page_response_code code;
	unsigned int work_delay_ms;
	bool dequeue;
	bool check_groups;
	/* The work item waits for work_release before it answers. */
	bool hold_work;
	/* The handler queues the work item a second time, as soon as queued. */
	bool queue_twice;

	/* What happened */
	spinlock_t lock;
	unsigned int ndeliveries;
	struct iopf_test_delivery deliveries[IOPF_TEST_MAX_DELIVERIES];
	unsigned int nkept;
	struct iopf_group *kept[IOPF_TEST_MAX_KEPT];
	atomic_t works_done;
	atomic_t bad_groups;
	struct completion work_started;
	struct completion work_release;
	struct completion work_done;
	/* queue_twice: the second iopf_queue_work(), and whether the work had started */
	int second_queue_ret;
	bool started_before_second;
};

/* A device on an IOPF queue, removed at the end of the test. */
struct iopf_test_member {
	struct iopf_queue *queue;
	struct device *dev;
};

struct iopf_test_env {
	struct iopf_mock_log *log;
	struct iopf_mock_iommu *mock;
	struct iopf_queue *queue;
	struct device *dev[IOPF_TEST_MAX_DEVS];
};

static atomic64_t iopf_test_next_addr = ATOMIC64_INIT(0x10000000);

/* Faults */

/*
 * A page request of group @grpid. Every fault gets a fresh page address,
 * which identifies it in the response log and in the groups.
 */
static struct iopf_fault make_fault(u32 pasid, u32 grpid, bool last,
				    bool pasid_valid)
{
	struct iopf_fault evt;
	u64 addr = atomic64_add_return(PAGE_SIZE, &iopf_test_next_addr);

	memset(&evt, 0, sizeof(evt));
	evt.fault.type = IOMMU_FAULT_PAGE_REQ;
	if (last)
		evt.fault.prm.flags |= IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
	if (pasid_valid)
		evt.fault.prm.flags |= IOMMU_FAULT_PAGE_REQUEST_PASID_VALID |
				       IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;
	evt.fault.prm.pasid = pasid;
	evt.fault.prm.grpid = grpid;
	evt.fault.prm.perm = IOMMU_FAULT_PERM_READ | IOMMU_FAULT_PERM_WRITE;
	evt.fault.prm.addr = addr;
	evt.fault.prm.private_data[0] = addr ^ 0x5a5a5a5a;
	evt.fault.prm.private_data[1] = grpid;
	INIT_LIST_HEAD(&evt.list);

	return evt;
}

static bool fault_eq(const struct iommu_fault *a, const struct iommu_fault *b)
{
	return a->type == b->type &&
	       a->prm.flags == b->prm.flags &&
	       a->prm.pasid == b->prm.pasid &&
	       a->prm.grpid == b->prm.grpid &&
	       a->prm.perm == b->prm.perm &&
	       a->prm.addr == b->prm.addr &&
	       a->prm.private_data[0] == b->prm.private_data[0] &&
	       a->prm.private_data[1] == b->prm.private_data[1];
}

static void report_fault(struct kunit *test, struct device *dev,
		   struct iopf_fault *evt, int expected)
{
	int ret = iommu_report_device_fault(dev, evt);

	KUNIT_EXPECT_EQ_MSG(test, ret, expected,
			    "report of pasid %u grpid %u%s", evt->fault.prm.pasid,
			    evt->fault.prm.grpid,
			    evt->fault.prm.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE ?
			    " (last)" : "");
}

/* Response log */

/* Response number @idx answers @evt on @dev with @code. */
static void expect_resp(struct kunit *test, struct iopf_mock_log *log,
			unsigned int idx, struct device *dev,
			const struct iopf_fault *evt, u32 code)
{
	struct iopf_mock_resp r;

	KUNIT_ASSERT_TRUE_MSG(test, iopf_mock_log_get(log, idx, &r),
			      "no response #%u", idx);
	KUNIT_EXPECT_PTR_EQ(test, r.dev, dev);
	KUNIT_EXPECT_EQ(test, r.msg.pasid, evt->fault.prm.pasid);
	KUNIT_EXPECT_EQ(test, r.msg.grpid, evt->fault.prm.grpid);
	KUNIT_EXPECT_EQ(test, r.msg.code, code);
	KUNIT_ASSERT_TRUE(test, r.has_evt);
	KUNIT_EXPECT_TRUE_MSG(test, fault_eq(&r.fault, &evt->fault),
			      "response #%u: event addr %#llx, expected %#llx",
			      idx, r.fault.prm.addr, evt->fault.prm.addr);
}

/* Exactly one response in the whole log answers @evt; it is on @dev with @code. */
static void expect_resp_once(struct kunit *test, struct iopf_mock_log *log,
			     struct device *dev, const struct iopf_fault *evt,
			     u32 code)
{
	unsigned int i, n = iopf_mock_log_count(log), found = 0, idx = 0;
	struct iopf_mock_resp r;

	for (i = 0; i < n; i++) {
		if (!iopf_mock_log_get(log, i, &r))
			break;
		if (r.has_evt && r.fault.prm.addr == evt->fault.prm.addr) {
			found++;
			idx = i;
		}
	}
	KUNIT_EXPECT_EQ_MSG(test, found, 1,
			    "responses to pasid %u grpid %u addr %#llx",
			    evt->fault.prm.pasid, evt->fault.prm.grpid,
			    evt->fault.prm.addr);
	if (found)
		expect_resp(test, log, idx, dev, evt, code);
}

static void expect_log_count(struct kunit *test, struct iopf_mock_log *log,
			     unsigned int count)
{
	KUNIT_EXPECT_EQ_MSG(test, iopf_mock_log_count(log), count,
			    "number of page responses");
}

/* Fault handler */

static struct iopf_test_handle *to_test_handle(struct iommu_attach_handle *handle)
{
	return container_of(handle, struct iopf_test_handle, handle);
}

/* Partials sent for group @grpid by the concurrent reporters. */
static unsigned int iopf_test_nr_partials(u32 grpid)
{
	return grpid % 4;
}

/*
 * Consistency of a group of the concurrent test: one grpid, partials oldest
 * first (addresses grow), only the last one flagged last, all counted.
 */
static bool iopf_test_group_ok(struct iopf_group *group)
{
	const struct iommu_fault *last = &group->last_fault.fault;
	struct iopf_fault *iopf;
	unsigned int n = 0;
	u64 prev = 0;

	list_for_each_entry(iopf, &group->faults, list) {
		bool is_last = list_is_last(&iopf->list, &group->faults);

		if (iopf->fault.prm.grpid != last->prm.grpid ||
		    iopf->fault.prm.pasid != last->prm.pasid ||
		    iopf->fault.prm.addr <= prev ||
		    !!(iopf->fault.prm.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE) !=
		    is_last)
			return false;
		if (is_last && !fault_eq(&iopf->fault, last))
			return false;
		prev = iopf->fault.prm.addr;
		n++;
	}

	return n == group->fault_count &&
	       n == iopf_test_nr_partials(last->prm.grpid) + 1;
}

static void iopf_test_record(struct iopf_test_handle *h,
			     struct iopf_group *group)
{
	struct iopf_test_delivery *d = NULL;
	struct iopf_fault *iopf;
	unsigned long flags;

	spin_lock_irqsave(&h->lock, flags);
	if (h->ndeliveries < IOPF_TEST_MAX_DELIVERIES)
		d = &h->deliveries[h->ndeliveries];
	h->ndeliveries++;
	if (d) {
		d->fault_count = group->fault_count;
		d->last = group->last_fault.fault;
		d->nfaults = 0;
		list_for_each_entry(iopf, &group->faults, list) {
			if (d->nfaults < IOPF_TEST_MAX_GROUP_FAULTS)
				d->faults[d->nfaults] = iopf->fault;
			d->nfaults++;
		}
	}
	spin_unlock_irqrestore(&h->lock, flags);
}

static void iopf_test_work(struct work_struct *work)
{
	struct iopf_group *group = container_of(work, struct iopf_group, work);
	struct iopf_test_handle *h = to_test_handle(group->attach_handle);

	complete(&h->work_started);
	if (h->hold_work)
		wait_for_completion(&h->work_release);
	if (h->work_delay_ms)
		msleep(h->work_delay_ms);
	/* queue_twice: the test answers and frees the group, once it ran. */
	if (!h->queue_twice) {
		iopf_group_response(group, h->code);
		iopf_free_group(group);
	}
	atomic_inc(&h->works_done);
	complete(&h->work_done);
}

static int iopf_test_handler(struct iopf_group *group)
{
	struct iopf_test_handle *h = to_test_handle(group->attach_handle);
	unsigned long flags;
	int ret;

	if (h->check_groups && !iopf_test_group_ok(group))
		atomic_inc(&h->bad_groups);
	iopf_test_record(h, group);

	switch (h->mode) {
	case IOPF_TEST_ANSWER:
		iopf_group_response(group, h->code);
		iopf_free_group(group);
		return 0;
	case IOPF_TEST_DEFER:
		ret = iopf_queue_work(group, iopf_test_work);
		if (!ret && h->queue_twice) {
			h->started_before_second = completion_done(&h->work_started);
			h->second_queue_ret = iopf_queue_work(group, iopf_test_work);
			/* The test answers the group once the work item ran. */
			h->kept[h->nkept++] = group;
		}
		return ret;
	case IOPF_TEST_FAIL:
		return -EIO;
	case IOPF_TEST_KEEP:
		if (h->dequeue)
			iopf_group_dequeue(group);
		spin_lock_irqsave(&h->lock, flags);
		if (h->nkept < IOPF_TEST_MAX_KEPT) {
			h->kept[h->nkept++] = group;
			spin_unlock_irqrestore(&h->lock, flags);
			return 0;
		}
		spin_unlock_irqrestore(&h->lock, flags);
		return -ENOSPC;
	}

	return -EINVAL;
}

static unsigned int iopf_test_deliveries(struct iopf_test_handle *h)
{
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&h->lock, flags);
	n = h->ndeliveries;
	spin_unlock_irqrestore(&h->lock, flags);

	return n;
}

/*
 * Handler call number @idx of @h got a group made of @faults, in this order
 * (the last one being the last page).
 */
static void expect_group(struct kunit *test, struct iopf_test_handle *h,
			 unsigned int idx, const struct iopf_fault *const *faults,
			 unsigned int n)
{
	const struct iopf_test_delivery *d;
	unsigned int i;

	KUNIT_ASSERT_LT_MSG(test, idx, iopf_test_deliveries(h),
			    "handler call #%u missing", idx);
	KUNIT_ASSERT_LT(test, idx, IOPF_TEST_MAX_DELIVERIES);
	d = &h->deliveries[idx];

	KUNIT_EXPECT_EQ_MSG(test, d->fault_count, (size_t)n,
			    "fault_count of group #%u", idx);
	KUNIT_EXPECT_EQ_MSG(test, d->nfaults, n, "faults listed in group #%u",
			    idx);
	KUNIT_EXPECT_TRUE_MSG(test, fault_eq(&d->last, &faults[n - 1]->fault),
			      "last_fault of group #%u: addr %#llx, expected %#llx",
			      idx, d->last.prm.addr, faults[n - 1]->fault.prm.addr);
	for (i = 0; i < min3(d->nfaults, n, IOPF_TEST_MAX_GROUP_FAULTS); i++)
		KUNIT_EXPECT_TRUE_MSG(test,
				      fault_eq(&d->faults[i], &faults[i]->fault),
				      "fault %u of group #%u: addr %#llx, expected %#llx",
				      i, idx, d->faults[i].prm.addr,
				      faults[i]->fault.prm.addr);
}

#define EXPECT_GROUP(test, h, idx, ...)					\
	do {								\
		const struct iopf_fault *__faults[] = { __VA_ARGS__ };	\
									\
		expect_group(test, h, idx, __faults, ARRAY_SIZE(__faults)); \
	} while (0)

/* Forget kept groups that the IOPF core freed (remove_device, queue_free). */
static void iopf_test_forget_kept(struct iopf_test_handle *h)
{
	unsigned long flags;

	spin_lock_irqsave(&h->lock, flags);
	h->nkept = 0;
	spin_unlock_irqrestore(&h->lock, flags);
}

/*
 * @h's kept groups were answered when their device left its queue, and are
 * given up (iopf_mock_release_removed_group()).
 */
static void iopf_test_release_kept(struct iopf_test_handle *h)
{
	unsigned int i;

	for (i = 0; i < h->nkept; i++)
		iopf_mock_release_removed_group(h->kept[i]);
	iopf_test_forget_kept(h);
}

/* Setup */

KUNIT_DEFINE_ACTION_WRAPPER(iopf_test_queue_free_action, iopf_queue_free,
			    struct iopf_queue *);

static struct iopf_queue *iopf_test_queue_alloc(struct kunit *test)
{
	struct iopf_queue *queue;
	int ret;

	queue = iopf_queue_alloc("iopf-kunit");
	KUNIT_ASSERT_NOT_NULL(test, queue);
	ret = kunit_add_action_or_reset(test, iopf_test_queue_free_action,
					queue);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return queue;
}

/*
 * Flushing first is what drivers do before removing a device: a work item
 * still queued would otherwise run on a group freed by the removal.
 */
static void iopf_test_remove_action(void *data)
{
	struct iopf_test_member *m = data;

	iopf_queue_flush_dev(m->dev);
	iopf_queue_remove_device(m->queue, m->dev);
}

static struct iopf_test_member *iopf_test_add_device(struct kunit *test,
						     struct iopf_queue *queue,
						     struct device *dev)
{
	struct iopf_test_member *m;
	int ret;

	m = kunit_kzalloc(test, sizeof(*m), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, m);
	m->queue = queue;
	m->dev = dev;

	ret = iopf_queue_add_device(queue, dev);
	KUNIT_ASSERT_EQ(test, ret, 0);
	ret = kunit_add_action_or_reset(test, iopf_test_remove_action, m);
	KUNIT_ASSERT_EQ(test, ret, 0);

	return m;
}

/* Flush and remove @m's device from its queue now. */
static void iopf_test_remove_device(struct kunit *test,
				    struct iopf_test_member *m)
{
	kunit_release_action(test, iopf_test_remove_action, m);
}

/* Remove @m's device and check that it had no pending group left. */
static void expect_idle_at_removal(struct kunit *test,
				   struct iopf_test_env *env,
				   struct iopf_test_member *m)
{
	unsigned int before = iopf_mock_log_count(env->log);

	iopf_test_remove_device(test, m);
	KUNIT_EXPECT_EQ_MSG(test, iopf_mock_log_count(env->log), before,
			    "groups still pending when the device was removed");
}

/*
 * A mock IOMMU with @flags, @ndevs devices behind it and an IOPF queue. The
 * devices are not on the queue yet: attach first, then add them, so that the
 * end-of-test teardown removes them from the queue before detaching.
 */
static struct iopf_test_env *iopf_test_setup(struct kunit *test,
					     unsigned int flags,
					     unsigned int ndevs)
{
	struct iopf_test_env *env = test->priv;
	unsigned int i;

	KUNIT_ASSERT_LE(test, ndevs, IOPF_TEST_MAX_DEVS);
	env->mock = iopf_mock_iommu_create(test, flags, env->log);
	for (i = 0; i < ndevs; i++)
		env->dev[i] = iopf_mock_dev_create(test, env->mock);
	env->queue = iopf_test_queue_alloc(test);

	return env;
}

/*
 * Attach a new domain of @type to @pasid of @dev (IOMMU_NO_PASID: the RID),
 * with a test handle whose handler acts as @mode. Without @handler, the
 * domain has no iopf_handler.
 */
static struct iopf_test_handle *
iopf_test_attach(struct kunit *test, struct iopf_mock_iommu *mock,
		 struct device *dev, ioasid_t pasid, unsigned int type,
		 bool handler, enum iopf_test_mode mode)
{
	struct iommu_domain *domain;
	struct iopf_test_handle *h;

	h = kunit_kzalloc(test, sizeof(*h), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, h);
	spin_lock_init(&h->lock);
	atomic_set(&h->works_done, 0);
	atomic_set(&h->bad_groups, 0);
	init_completion(&h->work_started);
	init_completion(&h->work_release);
	init_completion(&h->work_done);
	h->mode = mode;
	h->code = IOMMU_PAGE_RESP_SUCCESS;

	domain = iopf_mock_domain_alloc(test, mock, type,
					handler ? iopf_test_handler : NULL);
	if (pasid == IOMMU_NO_PASID)
		h->attach = iopf_mock_attach_rid(test, domain, dev, &h->handle);
	else
		h->attach = iopf_mock_attach_pasid(test, domain, dev, pasid,
						   &h->handle);

	return h;
}

static struct iopf_test_handle *
iopf_test_attach_rid(struct kunit *test, struct iopf_test_env *env,
		     struct device *dev, enum iopf_test_mode mode)
{
	return iopf_test_attach(test, env->mock, dev, IOMMU_NO_PASID,
				IOMMU_DOMAIN_UNMANAGED, true, mode);
}

static struct iopf_test_handle *
iopf_test_attach_pasid(struct kunit *test, struct iopf_test_env *env,
		       struct device *dev, ioasid_t pasid,
		       enum iopf_test_mode mode)
{
	return iopf_test_attach(test, env->mock, dev, pasid,
				IOMMU_DOMAIN_UNMANAGED, true, mode);
}

/* Cases: grouping */

static void iopf_test_single_page_inline(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_test_handle *h;
	struct iopf_fault e1, e2;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	e1 = make_fault(0, 1, true, false);
	report_fault(test, dev, &e1, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 1);
	EXPECT_GROUP(test, h, 0, &e1);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &e1, IOMMU_PAGE_RESP_SUCCESS);

	/* The code the handler responds with reaches the driver as is. */
	h->code = IOMMU_PAGE_RESP_INVALID;
	e2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &e2, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 2);
	EXPECT_GROUP(test, h, 1, &e2);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &e2, IOMMU_PAGE_RESP_INVALID);

	expect_idle_at_removal(test, env, m);
}

static void iopf_test_multi_page_group(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault p[3], last, again;
	struct iopf_test_member *m;
	struct iopf_test_handle *h;
	unsigned int i;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	/* Partials are held without a response and without a handler call. */
	for (i = 0; i < ARRAY_SIZE(p); i++) {
		p[i] = make_fault(0, 3, false, false);
		report_fault(test, dev, &p[i], 0);
	}
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 0);
	expect_log_count(test, env->log, 0);

	/* The last page completes the group: partials oldest first, then it. */
	last = make_fault(0, 3, true, false);
	report_fault(test, dev, &last, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 1);
	EXPECT_GROUP(test, h, 0, &p[0], &p[1], &p[2], &last);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &last, IOMMU_PAGE_RESP_SUCCESS);

	/* The partials went with that group: the next one of grpid 3 is alone. */
	again = make_fault(0, 3, true, false);
	report_fault(test, dev, &again, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 2);
	EXPECT_GROUP(test, h, 1, &again);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &again, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

static void iopf_test_interleaved_groups(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct iopf_fault a1, b1, a2, b2, a3, b3, la, lb;
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_test_handle *h;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	a1 = make_fault(0, 1, false, false);
	report_fault(test, dev, &a1, 0);
	b1 = make_fault(0, 2, false, false);
	report_fault(test, dev, &b1, 0);
	a2 = make_fault(0, 1, false, false);
	report_fault(test, dev, &a2, 0);
	b2 = make_fault(0, 2, false, false);
	report_fault(test, dev, &b2, 0);
	b3 = make_fault(0, 2, false, false);
	report_fault(test, dev, &b3, 0);
	a3 = make_fault(0, 1, false, false);
	report_fault(test, dev, &a3, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 0);
	expect_log_count(test, env->log, 0);

	lb = make_fault(0, 2, true, false);
	report_fault(test, dev, &lb, 0);
	la = make_fault(0, 1, true, false);
	report_fault(test, dev, &la, 0);

	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 2);
	EXPECT_GROUP(test, h, 0, &b1, &b2, &b3, &lb);
	EXPECT_GROUP(test, h, 1, &a1, &a2, &a3, &la);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 0, dev, &lb, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 1, dev, &la, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/* Partials are held per device: another device's last page does not take them. */
static void iopf_test_partials_per_device(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 2);
	struct device *d0 = env->dev[0], *d1 = env->dev[1];
	struct iopf_test_handle *h0, *h1;
	struct iopf_test_member *m0, *m1;
	struct iopf_fault p0, l0, l1;

	h0 = iopf_test_attach_rid(test, env, d0, IOPF_TEST_ANSWER);
	h1 = iopf_test_attach_rid(test, env, d1, IOPF_TEST_ANSWER);
	m0 = iopf_test_add_device(test, env->queue, d0);
	m1 = iopf_test_add_device(test, env->queue, d1);

	p0 = make_fault(0, 1, false, false);
	report_fault(test, d0, &p0, 0);
	l1 = make_fault(0, 1, true, false);
	report_fault(test, d1, &l1, 0);
	l0 = make_fault(0, 1, true, false);
	report_fault(test, d0, &l0, 0);

	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h1), 1);
	EXPECT_GROUP(test, h1, 0, &l1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h0), 1);
	EXPECT_GROUP(test, h0, 0, &p0, &l0);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 0, d1, &l1, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 1, d0, &l0, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m1);
	expect_idle_at_removal(test, env, m0);
}

/*
 * Partials join the last page of the same group index on the device, whatever
 * their PASID: the PRG index identifies the group (it is per function in
 * PCIe), and the handler is the one of the last page.
 */
static void iopf_test_partials_match_grpid_only(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *hr, *hp;
	struct iopf_test_member *m;
	struct iopf_fault p, l;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	hp = iopf_test_attach_pasid(test, env, dev, 5, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	p = make_fault(5, 7, false, true);
	report_fault(test, dev, &p, 0);
	l = make_fault(0, 7, true, false);
	report_fault(test, dev, &l, 0);

	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 1);
	EXPECT_GROUP(test, hr, 0, &p, &l);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/*
 * Rust only: a device holds at most CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL
 * partials. Past that, the oldest incomplete group is dropped whole, and no
 * handler sees it: its later partials are dropped too and its last page is
 * answered INVALID by the core. The other groups stay complete, and the group
 * index is usable again afterwards.
 */
static void iopf_test_partial_bound(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c holds partial requests without bound");
#else
	const unsigned int max = CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL;
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct iopf_fault old, first2, p, young, late, l1, l2, l3, again, l1b;
	struct device *dev = env->dev[0];
	struct iopf_test_handle *h;
	struct iopf_test_member *m;
	unsigned int i;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	/* Group 1 is the oldest; group 2 fills the device up to the bound. */
	old = make_fault(0, 1, false, false);
	report_fault(test, dev, &old, 0);
	first2 = make_fault(0, 2, false, false);
	report_fault(test, dev, &first2, 0);
	for (i = 2; i < max; i++) {
		p = make_fault(0, 2, false, false);
		KUNIT_ASSERT_EQ(test, iommu_report_device_fault(dev, &p), 0);
	}
	/* One past the bound: group 1 goes, and so does its next partial. */
	young = make_fault(0, 3, false, false);
	report_fault(test, dev, &young, 0);
	late = make_fault(0, 1, false, false);
	report_fault(test, dev, &late, 0);

	l1 = make_fault(0, 1, true, false);
	report_fault(test, dev, &l1, 0);
	l2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &l2, 0);
	l3 = make_fault(0, 3, true, false);
	report_fault(test, dev, &l3, 0);

	KUNIT_ASSERT_EQ(test, iopf_test_deliveries(h), 2);
	KUNIT_EXPECT_EQ(test, h->deliveries[0].fault_count, (size_t)max);
	KUNIT_EXPECT_EQ(test, h->deliveries[0].nfaults, max);
	KUNIT_EXPECT_TRUE(test, fault_eq(&h->deliveries[0].faults[0],
					 &first2.fault));
	KUNIT_EXPECT_TRUE(test, fault_eq(&h->deliveries[0].last, &l2.fault));
	EXPECT_GROUP(test, h, 1, &young, &l3);
	expect_log_count(test, env->log, 3);
	expect_resp(test, env->log, 0, dev, &l1, IOMMU_PAGE_RESP_INVALID);
	expect_resp(test, env->log, 1, dev, &l2, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 2, dev, &l3, IOMMU_PAGE_RESP_SUCCESS);

	/* Its last page refused, group index 1 starts afresh. */
	again = make_fault(0, 1, false, false);
	report_fault(test, dev, &again, 0);
	l1b = make_fault(0, 1, true, false);
	report_fault(test, dev, &l1b, 0);
	EXPECT_GROUP(test, h, 2, &again, &l1b);
	expect_resp(test, env->log, 3, dev, &l1b, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
#endif
}

/* Cases: handler lookup */

/* PASID_VALID: the PASID's handle; otherwise the RID's, whatever prm.pasid. */
static void iopf_test_lookup_pasid_and_rid(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault e1, e2, e3, p4, l4;
	struct iopf_test_handle *hr, *hp;
	struct iopf_test_member *m;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	hp = iopf_test_attach_pasid(test, env, dev, 7, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	e1 = make_fault(7, 1, true, true);
	report_fault(test, dev, &e1, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 0);
	EXPECT_GROUP(test, hp, 0, &e1);

	e2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &e2, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 1);
	EXPECT_GROUP(test, hr, 0, &e2);

	/* Without PASID_VALID the pasid field does not select a handle. */
	e3 = make_fault(7, 3, true, false);
	report_fault(test, dev, &e3, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 2);
	EXPECT_GROUP(test, hr, 1, &e3);

	/* A multi-page group on a PASID. */
	p4 = make_fault(7, 4, false, true);
	report_fault(test, dev, &p4, 0);
	l4 = make_fault(7, 4, true, true);
	report_fault(test, dev, &l4, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 2);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 2);
	EXPECT_GROUP(test, hp, 1, &p4, &l4);

	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 0, dev, &e1, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 1, dev, &e2, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 2, dev, &e3, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 3, dev, &l4, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/*
 * With a user-managed PASID table, a PASID without a handle of its own goes to
 * the NESTED domain's handle on the RID; a PASID with a handle keeps it.
 */
static void iopf_test_lookup_user_pasid_table(struct kunit *test)
{
	struct iopf_test_env *env =
		iopf_test_setup(test, IOPF_MOCK_USER_PASID_TABLE, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault e1, e2, e3, p4, l4;
	struct iopf_test_handle *hn, *hp;
	struct iopf_test_member *m;

	hn = iopf_test_attach(test, env->mock, dev, IOMMU_NO_PASID,
			      IOMMU_DOMAIN_NESTED, true, IOPF_TEST_ANSWER);
	hp = iopf_test_attach_pasid(test, env, dev, 7, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	e1 = make_fault(9, 1, true, true);
	report_fault(test, dev, &e1, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 0);
	EXPECT_GROUP(test, hn, 0, &e1);

	e2 = make_fault(7, 2, true, true);
	report_fault(test, dev, &e2, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 1);
	EXPECT_GROUP(test, hp, 0, &e2);

	e3 = make_fault(0, 3, true, false);
	report_fault(test, dev, &e3, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 2);
	EXPECT_GROUP(test, hn, 1, &e3);

	p4 = make_fault(9, 4, false, true);
	report_fault(test, dev, &p4, 0);
	l4 = make_fault(9, 4, true, true);
	report_fault(test, dev, &l4, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 3);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 1);
	EXPECT_GROUP(test, hn, 2, &p4, &l4);

	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 0, dev, &e1, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 1, dev, &e2, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 2, dev, &e3, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 3, dev, &l4, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/* The user_pasid_table fallback only takes a NESTED domain on the RID. */
static void iopf_test_lookup_user_pasid_table_needs_nested(struct kunit *test)
{
	struct iopf_test_env *env =
		iopf_test_setup(test, IOPF_MOCK_USER_PASID_TABLE, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_test_handle *hr;
	struct iopf_fault e1, e2;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	e1 = make_fault(9, 1, true, true);
	report_fault(test, dev, &e1, -EINVAL);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 0);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &e1, IOMMU_PAGE_RESP_INVALID);

	e2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &e2, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 1);
	EXPECT_GROUP(test, hr, 0, &e2);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &e2, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/* Without user_pasid_table, a PASID without a handle has no handler. */
static void iopf_test_lookup_no_user_pasid_table(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_test_handle *hn;
	struct iopf_fault e1, e2;

	hn = iopf_test_attach(test, env->mock, dev, IOMMU_NO_PASID,
			      IOMMU_DOMAIN_NESTED, true, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	e1 = make_fault(9, 1, true, true);
	report_fault(test, dev, &e1, -EINVAL);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 0);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &e1, IOMMU_PAGE_RESP_INVALID);

	/* The RID lookup takes a handle of any domain type. */
	e2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &e2, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 1);
	EXPECT_GROUP(test, hn, 0, &e2);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &e2, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/*
 * No handler: a handle whose domain has no iopf_handler (no fallback to the
 * RID even with user_pasid_table), or no handle at all. The request is
 * answered INVALID and the report fails with -EINVAL.
 */
static void iopf_test_lookup_no_handler(struct kunit *test)
{
	struct iopf_test_env *env =
		iopf_test_setup(test, IOPF_MOCK_USER_PASID_TABLE, 3);
	struct device *d0 = env->dev[0], *d1 = env->dev[1], *d2 = env->dev[2];
	struct iopf_test_member *m0, *m1, *m2;
	struct iopf_fault e1, e2, e3, e4;
	struct iopf_test_handle *hn;

	/* d0: NESTED RID handle with a handler, PASID 7 handle without. */
	hn = iopf_test_attach(test, env->mock, d0, IOMMU_NO_PASID,
			      IOMMU_DOMAIN_NESTED, true, IOPF_TEST_ANSWER);
	iopf_test_attach(test, env->mock, d0, 7, IOMMU_DOMAIN_UNMANAGED, false,
			 IOPF_TEST_ANSWER);
	/* d1: RID handle without a handler. d2: nothing attached. */
	iopf_test_attach(test, env->mock, d1, IOMMU_NO_PASID,
			 IOMMU_DOMAIN_UNMANAGED, false, IOPF_TEST_ANSWER);
	m0 = iopf_test_add_device(test, env->queue, d0);
	m1 = iopf_test_add_device(test, env->queue, d1);
	m2 = iopf_test_add_device(test, env->queue, d2);

	e1 = make_fault(7, 1, true, true);
	report_fault(test, d0, &e1, -EINVAL);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hn), 0);

	e2 = make_fault(0, 2, true, false);
	report_fault(test, d1, &e2, -EINVAL);
	e3 = make_fault(0, 3, true, false);
	report_fault(test, d2, &e3, -EINVAL);
	e4 = make_fault(9, 4, true, true);
	report_fault(test, d2, &e4, -EINVAL);

	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 0, d0, &e1, IOMMU_PAGE_RESP_INVALID);
	expect_resp(test, env->log, 1, d1, &e2, IOMMU_PAGE_RESP_INVALID);
	expect_resp(test, env->log, 2, d2, &e3, IOMMU_PAGE_RESP_INVALID);
	expect_resp(test, env->log, 3, d2, &e4, IOMMU_PAGE_RESP_INVALID);

	expect_idle_at_removal(test, env, m2);
	expect_idle_at_removal(test, env, m1);
	expect_idle_at_removal(test, env, m0);
}

/*
 * Without a handler even a partial is answered INVALID (-EINVAL), and it is
 * not held: a later last page of its group comes alone.
 */
static void iopf_test_no_handler_partial(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_test_handle *h;
	struct iopf_fault p, l;

	m = iopf_test_add_device(test, env->queue, dev);

	p = make_fault(0, 1, false, false);
	report_fault(test, dev, &p, -EINVAL);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &p, IOMMU_PAGE_RESP_INVALID);

	/* Attaching under a device already on the queue is fine for the core. */
	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	l = make_fault(0, 1, true, false);
	report_fault(test, dev, &l, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 1);
	EXPECT_GROUP(test, h, 0, &l);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &l, IOMMU_PAGE_RESP_SUCCESS);

	/* Detach before the device leaves the queue (teardown is LIFO). */
	iopf_mock_detach(test, h->attach);
	expect_idle_at_removal(test, env, m);
}

/* A fault that is not a page request gets no response. */
static void iopf_test_not_page_request(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 2);
	struct device *d0 = env->dev[0], *d1 = env->dev[1];
	struct iopf_test_member *m0, *m1;
	struct iopf_fault e1, e2, e3, e4;

	/* d0: nothing attached. d1: RID handle without a handler. */
	iopf_test_attach(test, env->mock, d1, IOMMU_NO_PASID,
			 IOMMU_DOMAIN_UNMANAGED, false, IOPF_TEST_ANSWER);
	m0 = iopf_test_add_device(test, env->queue, d0);
	m1 = iopf_test_add_device(test, env->queue, d1);

	e1 = make_fault(0, 1, true, false);
	e1.fault.type = 0;
	report_fault(test, d0, &e1, -EINVAL);
	e2 = make_fault(0, 2, true, false);
	e2.fault.type = IOMMU_FAULT_PAGE_REQ + 1;
	report_fault(test, d0, &e2, -EINVAL);
	e3 = make_fault(3, 3, false, true);
	e3.fault.type = 0;
	report_fault(test, d1, &e3, -EINVAL);
	expect_log_count(test, env->log, 0);

	/* The same fault as a page request is answered. */
	e4 = make_fault(0, 4, true, false);
	report_fault(test, d0, &e4, -EINVAL);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, d0, &e4, IOMMU_PAGE_RESP_INVALID);

	expect_idle_at_removal(test, env, m1);
	expect_idle_at_removal(test, env, m0);
}

/* Cases: handler outcome */

/*
 * A handler that fails: the group is answered FAILURE, the report still
 * succeeds, and the group's partials are gone with it.
 */
static void iopf_test_handler_failure(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct iopf_fault p1, p2, l, again;
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_test_handle *h;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_FAIL);
	m = iopf_test_add_device(test, env->queue, dev);

	p1 = make_fault(0, 4, false, false);
	report_fault(test, dev, &p1, 0);
	p2 = make_fault(0, 4, false, false);
	report_fault(test, dev, &p2, 0);
	l = make_fault(0, 4, true, false);
	report_fault(test, dev, &l, 0);

	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 1);
	EXPECT_GROUP(test, h, 0, &p1, &p2, &l);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_FAILURE);

	h->mode = IOPF_TEST_ANSWER;
	again = make_fault(0, 4, true, false);
	report_fault(test, dev, &again, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 2);
	EXPECT_GROUP(test, h, 1, &again);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &again, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
}

/*
 * A group taken off the pending list with iopf_group_dequeue() is not
 * answered by iopf_queue_remove_device(); its handler answers it, even after
 * the removal (as iommufd does when it detaches a domain), and only once.
 */
static void iopf_test_group_dequeue(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *hr, *hp;
	struct iopf_fault la, lb, pc, lc;
	struct iopf_test_member *m;
	struct iopf_group *group;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_TEST_KEEP);
	hr->dequeue = true;
	hp = iopf_test_attach_pasid(test, env, dev, 3, IOPF_TEST_KEEP);
	m = iopf_test_add_device(test, env->queue, dev);

	/* Dequeued and answered right away: a normal response. */
	la = make_fault(0, 1, true, false);
	report_fault(test, dev, &la, 0);
	KUNIT_ASSERT_EQ(test, hr->nkept, 1);
	iopf_group_response(hr->kept[0], IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(hr->kept[0]);
	iopf_test_forget_kept(hr);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &la, IOMMU_PAGE_RESP_SUCCESS);

	/* One dequeued group (RID), one pending group (PASID 3). */
	lb = make_fault(0, 2, true, false);
	report_fault(test, dev, &lb, 0);
	pc = make_fault(3, 3, false, true);
	report_fault(test, dev, &pc, 0);
	lc = make_fault(3, 3, true, true);
	report_fault(test, dev, &lc, 0);
	KUNIT_ASSERT_EQ(test, hr->nkept, 1);
	KUNIT_ASSERT_EQ(test, hp->nkept, 1);
	EXPECT_GROUP(test, hp, 0, &pc, &lc);
	expect_log_count(test, env->log, 1);

	/* The removal answers the pending group only. */
	iopf_test_remove_device(test, m);
	iopf_test_release_kept(hp);
	expect_log_count(test, env->log, 2);
	expect_resp(test, env->log, 1, dev, &lc, IOMMU_PAGE_RESP_INVALID);

	group = hr->kept[0];
	iopf_test_forget_kept(hr);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(group);
	expect_log_count(test, env->log, 3);
	expect_resp(test, env->log, 2, dev, &lb, IOMMU_PAGE_RESP_SUCCESS);
}

/*
 * Rust only: a group is answered once. A second iopf_group_response() is
 * dropped with a warning instead of reaching the device, which would take
 * it as the answer to whatever request reused the group index.
 */
static void iopf_test_double_response(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c sends every response to the device");
#else
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *h;
	struct iopf_test_member *m;
	struct iopf_group *group;
	struct iopf_fault l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_KEEP);
	m = iopf_test_add_device(test, env->queue, dev);

	l = make_fault(0, 1, true, false);
	report_fault(test, dev, &l, 0);
	KUNIT_ASSERT_EQ(test, h->nkept, 1);
	group = h->kept[0];
	iopf_test_forget_kept(h);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_group_response(group, IOMMU_PAGE_RESP_FAILURE);
	iopf_free_group(group);

	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_SUCCESS);
	expect_idle_at_removal(test, env, m);
#endif
}

/*
 * Rust only: a handler that frees a group without answering it (a bug) does
 * not leave the device waiting forever: iopf_free_group() answers INVALID.
 */
static void iopf_test_free_without_response(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c frees the group and leaves the device waiting");
#else
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *h;
	struct iopf_test_member *m;
	struct iopf_fault p, l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_KEEP);
	h->dequeue = true;
	m = iopf_test_add_device(test, env->queue, dev);

	p = make_fault(0, 4, false, false);
	report_fault(test, dev, &p, 0);
	l = make_fault(0, 4, true, false);
	report_fault(test, dev, &l, 0);
	KUNIT_ASSERT_EQ(test, h->nkept, 1);
	iopf_free_group(h->kept[0]);
	iopf_test_forget_kept(h);

	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_INVALID);
	expect_idle_at_removal(test, env, m);
#endif
}

/* iopf_queue_flush_dev() waits for the work queued with iopf_queue_work(). */
static void iopf_test_flush_dev_waits(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault l1, p2, l2, l3;
	struct iopf_test_member *m;
	struct iopf_test_handle *h;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_DEFER);
	h->work_delay_ms = 100;
	m = iopf_test_add_device(test, env->queue, dev);

	l1 = make_fault(0, 1, true, false);
	report_fault(test, dev, &l1, 0);
	p2 = make_fault(0, 2, false, false);
	report_fault(test, dev, &p2, 0);
	l2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &l2, 0);
	l3 = make_fault(0, 3, true, false);
	report_fault(test, dev, &l3, 0);

	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(dev), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done), 3);
	expect_log_count(test, env->log, 3);
	expect_resp_once(test, env->log, dev, &l1, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp_once(test, env->log, dev, &l2, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp_once(test, env->log, dev, &l3, IOMMU_PAGE_RESP_SUCCESS);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h), 3);
	EXPECT_GROUP(test, h, 1, &p2, &l2);

	expect_idle_at_removal(test, env, m);
}

/* Cases: queue operations */

/*
 * iopf_queue_discard_partial() drops the held partials of every device of the
 * queue, and only of that queue; pending groups are not affected.
 */
static void iopf_test_discard_partial(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 4);
	struct device *d0 = env->dev[0], *d1 = env->dev[1];
	struct device *d2 = env->dev[2], *d3 = env->dev[3];
	struct iopf_fault p0a, p0b, p1, p2, lk, l0, l1, l2, p0c, l0c;
	struct iopf_test_handle *h0, *h1, *h2, *h3;
	struct iopf_test_member *m0, *m1, *m2, *m3;
	struct iopf_queue *other;

	other = iopf_test_queue_alloc(test);
	h0 = iopf_test_attach_rid(test, env, d0, IOPF_TEST_ANSWER);
	h1 = iopf_test_attach_rid(test, env, d1, IOPF_TEST_ANSWER);
	h2 = iopf_test_attach_rid(test, env, d2, IOPF_TEST_ANSWER);
	h3 = iopf_test_attach_rid(test, env, d3, IOPF_TEST_KEEP);
	m0 = iopf_test_add_device(test, env->queue, d0);
	m1 = iopf_test_add_device(test, env->queue, d1);
	m2 = iopf_test_add_device(test, other, d2);
	m3 = iopf_test_add_device(test, env->queue, d3);

	p0a = make_fault(0, 1, false, false);
	report_fault(test, d0, &p0a, 0);
	p0b = make_fault(0, 1, false, false);
	report_fault(test, d0, &p0b, 0);
	p1 = make_fault(0, 1, false, false);
	report_fault(test, d1, &p1, 0);
	p2 = make_fault(0, 1, false, false);
	report_fault(test, d2, &p2, 0);
	lk = make_fault(0, 5, true, false);
	report_fault(test, d3, &lk, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h3), 1);

	KUNIT_EXPECT_EQ(test, iopf_queue_discard_partial(env->queue), 0);
	KUNIT_EXPECT_EQ(test, iopf_queue_discard_partial(NULL), -EINVAL);
	expect_log_count(test, env->log, 0);

	l0 = make_fault(0, 1, true, false);
	report_fault(test, d0, &l0, 0);
	l1 = make_fault(0, 1, true, false);
	report_fault(test, d1, &l1, 0);
	l2 = make_fault(0, 1, true, false);
	report_fault(test, d2, &l2, 0);
	EXPECT_GROUP(test, h0, 0, &l0);
	EXPECT_GROUP(test, h1, 0, &l1);
	EXPECT_GROUP(test, h2, 0, &p2, &l2);

	/* Partials held after the discard are grouped again. */
	p0c = make_fault(0, 2, false, false);
	report_fault(test, d0, &p0c, 0);
	l0c = make_fault(0, 2, true, false);
	report_fault(test, d0, &l0c, 0);
	EXPECT_GROUP(test, h0, 1, &p0c, &l0c);

	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 0, d0, &l0, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 1, d1, &l1, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 2, d2, &l2, IOMMU_PAGE_RESP_SUCCESS);
	expect_resp(test, env->log, 3, d0, &l0c, IOMMU_PAGE_RESP_SUCCESS);

	/* The kept group is still pending: the removal answers it. */
	iopf_test_remove_device(test, m3);
	iopf_test_release_kept(h3);
	expect_log_count(test, env->log, 5);
	expect_resp(test, env->log, 4, d3, &lk, IOMMU_PAGE_RESP_INVALID);

	expect_idle_at_removal(test, env, m2);
	expect_idle_at_removal(test, env, m1);
	expect_idle_at_removal(test, env, m0);
}

/*
 * iopf_queue_remove_device() answers every pending group INVALID, once, and
 * drops the held partials. Afterwards (the domain detached, as a report with
 * a handler but no queue is a driver bug) a report is answered INVALID with
 * -EINVAL; once re-added, the device starts afresh.
 */
static void iopf_test_remove_device_pending(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct iopf_fault p1, l1, l2, l3, p4, l4, l5;
	struct device *dev = env->dev[0];
	struct iopf_test_handle *hr, *hp, *h2;
	struct iopf_test_member *m, *m2;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_TEST_KEEP);
	hp = iopf_test_attach_pasid(test, env, dev, 5, IOPF_TEST_KEEP);
	m = iopf_test_add_device(test, env->queue, dev);

	p1 = make_fault(0, 1, false, false);
	report_fault(test, dev, &p1, 0);
	l1 = make_fault(0, 1, true, false);
	report_fault(test, dev, &l1, 0);
	l2 = make_fault(5, 2, true, true);
	report_fault(test, dev, &l2, 0);
	l3 = make_fault(0, 3, true, false);
	report_fault(test, dev, &l3, 0);
	p4 = make_fault(0, 4, false, false);
	report_fault(test, dev, &p4, 0);
	KUNIT_EXPECT_EQ(test, hr->nkept, 2);
	KUNIT_EXPECT_EQ(test, hp->nkept, 1);
	expect_log_count(test, env->log, 0);

	iopf_test_remove_device(test, m);
	iopf_test_release_kept(hr);
	iopf_test_release_kept(hp);
	expect_log_count(test, env->log, 3);
	expect_resp_once(test, env->log, dev, &l1, IOMMU_PAGE_RESP_INVALID);
	expect_resp_once(test, env->log, dev, &l2, IOMMU_PAGE_RESP_INVALID);
	expect_resp_once(test, env->log, dev, &l3, IOMMU_PAGE_RESP_INVALID);

	iopf_mock_detach(test, hp->attach);
	iopf_mock_detach(test, hr->attach);
	l4 = make_fault(0, 4, true, false);
	report_fault(test, dev, &l4, -EINVAL);
	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 3, dev, &l4, IOMMU_PAGE_RESP_INVALID);

	h2 = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	m2 = iopf_test_add_device(test, env->queue, dev);
	l5 = make_fault(0, 4, true, false);
	report_fault(test, dev, &l5, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h2), 1);
	EXPECT_GROUP(test, h2, 0, &l5);
	expect_log_count(test, env->log, 5);
	expect_resp(test, env->log, 4, dev, &l5, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m2);
}

/* Reports once the device is off its queue and its domains detached. */
static void iopf_test_report_after_remove(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault l1, l2, p3, l4;
	struct iopf_test_handle *hr, *hp;
	struct iopf_test_member *m;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_TEST_ANSWER);
	hp = iopf_test_attach_pasid(test, env, dev, 2, IOPF_TEST_ANSWER);
	m = iopf_test_add_device(test, env->queue, dev);

	l1 = make_fault(0, 1, true, false);
	report_fault(test, dev, &l1, 0);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l1, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
	iopf_mock_detach(test, hp->attach);
	iopf_mock_detach(test, hr->attach);

	l2 = make_fault(0, 2, true, false);
	report_fault(test, dev, &l2, -EINVAL);
	p3 = make_fault(0, 3, false, false);
	report_fault(test, dev, &p3, -EINVAL);
	l4 = make_fault(2, 4, true, true);
	report_fault(test, dev, &l4, -EINVAL);

	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hr), 1);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(hp), 0);
	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 1, dev, &l2, IOMMU_PAGE_RESP_INVALID);
	expect_resp(test, env->log, 2, dev, &p3, IOMMU_PAGE_RESP_INVALID);
	expect_resp(test, env->log, 3, dev, &l4, IOMMU_PAGE_RESP_INVALID);
}

/*
 * iopf_queue_add_device(): -EBUSY for a device already on a queue (this one
 * or another), -ENODEV when the IOMMU driver has no page_response op; a
 * removed device can be added again.
 */
static void iopf_test_add_device_errors(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct iopf_mock_iommu *no_resp;
	struct device *dev = env->dev[0];
	struct iopf_test_member *m;
	struct iopf_queue *other;
	struct device *nodev;
	int ret;

	other = iopf_test_queue_alloc(test);
	no_resp = iopf_mock_iommu_create(test, IOPF_MOCK_NO_PAGE_RESPONSE,
					 env->log);
	nodev = iopf_mock_dev_create(test, no_resp);

	m = iopf_test_add_device(test, env->queue, dev);
	ret = iopf_queue_add_device(env->queue, dev);
	KUNIT_EXPECT_EQ(test, ret, -EBUSY);
	ret = iopf_queue_add_device(other, dev);
	KUNIT_EXPECT_EQ(test, ret, -EBUSY);
	if (!ret)
		iopf_queue_remove_device(other, dev);

	iopf_test_remove_device(test, m);
	m = iopf_test_add_device(test, env->queue, dev);
	expect_idle_at_removal(test, env, m);
	m = iopf_test_add_device(test, other, dev);
	expect_idle_at_removal(test, env, m);

	ret = iopf_queue_add_device(env->queue, nodev);
	KUNIT_EXPECT_EQ(test, ret, -ENODEV);
	if (!ret)
		iopf_queue_remove_device(env->queue, nodev);

	expect_log_count(test, env->log, 0);
}

/*
 * iopf_queue_free() with devices still on the queue removes them: their
 * pending groups are answered INVALID once, their partials dropped, and they
 * can join another queue.
 */
static void iopf_test_queue_free_removes_devices(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 2);
	struct device *d0 = env->dev[0], *d1 = env->dev[1];
	struct iopf_fault l1, l2, p3, l3, k1;
	struct iopf_test_member *m0, *m1;
	struct iopf_test_handle *h0, *h1;
	struct iopf_queue *other;

	other = iopf_test_queue_alloc(test);
	h0 = iopf_test_attach_rid(test, env, d0, IOPF_TEST_KEEP);
	h1 = iopf_test_attach_rid(test, env, d1, IOPF_TEST_KEEP);
	m0 = iopf_test_add_device(test, env->queue, d0);
	m1 = iopf_test_add_device(test, env->queue, d1);

	l1 = make_fault(0, 1, true, false);
	report_fault(test, d0, &l1, 0);
	l2 = make_fault(0, 2, true, false);
	report_fault(test, d0, &l2, 0);
	p3 = make_fault(0, 3, false, false);
	report_fault(test, d0, &p3, 0);
	k1 = make_fault(0, 1, true, false);
	report_fault(test, d1, &k1, 0);
	KUNIT_EXPECT_EQ(test, h0->nkept, 2);
	KUNIT_EXPECT_EQ(test, h1->nkept, 1);
	expect_log_count(test, env->log, 0);

	/* The queue goes with both devices on it. */
	kunit_remove_action(test, iopf_test_remove_action, m1);
	kunit_remove_action(test, iopf_test_remove_action, m0);
	kunit_release_action(test, iopf_test_queue_free_action, env->queue);
	env->queue = NULL;
	iopf_test_release_kept(h0);
	iopf_test_release_kept(h1);

	expect_log_count(test, env->log, 3);
	expect_resp_once(test, env->log, d0, &l1, IOMMU_PAGE_RESP_INVALID);
	expect_resp_once(test, env->log, d0, &l2, IOMMU_PAGE_RESP_INVALID);
	expect_resp_once(test, env->log, d1, &k1, IOMMU_PAGE_RESP_INVALID);

	m0 = iopf_test_add_device(test, other, d0);
	m1 = iopf_test_add_device(test, other, d1);

	h0->mode = IOPF_TEST_ANSWER;
	l3 = make_fault(0, 3, true, false);
	report_fault(test, d0, &l3, 0);
	KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h0), 3);
	EXPECT_GROUP(test, h0, 2, &l3);
	expect_log_count(test, env->log, 4);
	expect_resp(test, env->log, 3, d0, &l3, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m1);
	expect_idle_at_removal(test, env, m0);
}

/* Releases the work item of @data's test handle when the removal answers. */
static void iopf_test_release_on_answer(void *data, struct device *dev,
					const struct iopf_fault *evt,
					const struct iommu_page_response *msg)
{
	struct iopf_test_handle *h = data;

	complete(&h->work_release);
}

/*
 * Rust only: a group handed to the queue's workqueue when its device leaves
 * the queue without iopf_queue_flush_dev() first (arm-smmu-v3's
 * arm_smmu_disable_iopf() does not flush). The removal answers the group
 * INVALID, once, but the group stays its work item's, which runs afterwards:
 * its own response is dropped and it frees the group.
 */
static void iopf_test_remove_with_work_queued(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c frees the group on removal while its work item holds it: a use-after-free");
#else
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *h;
	struct iopf_test_member *m;
	struct iopf_fault l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_DEFER);
	h->hold_work = true;
	m = iopf_test_add_device(test, env->queue, dev);
	l = make_fault(0, 1, true, false);
	report_fault(test, dev, &l, 0);
	wait_for_completion(&h->work_started);

	/* The work item goes on once the removal has answered its group. */
	iopf_mock_iommu_set_tap(env->mock, iopf_test_release_on_answer, h);
	kunit_remove_action(test, iopf_test_remove_action, m);
	iopf_queue_remove_device(env->queue, dev);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_INVALID);

	wait_for_completion(&h->work_done);
	iopf_mock_iommu_set_tap(env->mock, NULL, NULL);
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done), 1);
	expect_log_count(test, env->log, 1);
#endif
}

/*
 * Rust only: the same when the whole queue goes: iopf_queue_free() removes
 * the device, answering its group, then waits for the work item, which
 * frees it.
 */
static void iopf_test_queue_free_with_work_queued(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c frees the group on removal while its work item holds it: a use-after-free");
#else
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *h;
	struct iopf_test_member *m;
	struct iopf_fault l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_DEFER);
	h->hold_work = true;
	m = iopf_test_add_device(test, env->queue, dev);
	l = make_fault(0, 1, true, false);
	report_fault(test, dev, &l, 0);
	wait_for_completion(&h->work_started);

	iopf_mock_iommu_set_tap(env->mock, iopf_test_release_on_answer, h);
	kunit_remove_action(test, iopf_test_remove_action, m);
	kunit_release_action(test, iopf_test_queue_free_action, env->queue);
	env->queue = NULL;
	iopf_mock_iommu_set_tap(env->mock, NULL, NULL);

	/* iopf_queue_free() returned: the work item ran. */
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done), 1);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_INVALID);
#endif
}

/*
 * iopf_queue_work() on a group whose work item is still queued fails with
 * -EBUSY and leaves the item alone: re-initialising a queued item would clear
 * its pending bit and corrupt the workqueue's list.
 */
static void iopf_test_queue_work_busy(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_test_handle *h;
	struct iopf_test_member *m;
	struct iopf_group *group;
	struct iopf_fault l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_TEST_DEFER);
	h->queue_twice = true;
	h->hold_work = true;
	m = iopf_test_add_device(test, env->queue, dev);
	l = make_fault(0, 1, true, false);
	report_fault(test, dev, &l, 0);

	/* The work item started after the second call, unless the race was lost. */
	if (!h->started_before_second)
		KUNIT_EXPECT_EQ(test, h->second_queue_ret, -EBUSY);
	complete_all(&h->work_release);
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(dev), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done),
			h->second_queue_ret ? 1 : 2);

	/* The work item left the group to the test, which answers it. */
	KUNIT_ASSERT_EQ(test, h->nkept, 1);
	group = h->kept[0];
	iopf_test_forget_kept(h);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(group);
	expect_log_count(test, env->log, 1);
	expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_SUCCESS);
	expect_idle_at_removal(test, env, m);
}

/* Cases: concurrency */

#define IOPF_TEST_CONC_DEVS	4
#define IOPF_TEST_CONC_GROUPS	64
#define IOPF_TEST_CONC_PASID	1

struct iopf_test_reporter {
	struct device *dev;
	unsigned int errors;
	struct completion done;
};

static int iopf_test_reporter_fn(void *data)
{
	struct iopf_test_reporter *r = data;
	struct iopf_fault evt;
	unsigned int i, p;

	for (i = 0; i < IOPF_TEST_CONC_GROUPS; i++) {
		bool pasid_valid = i & 1;
		u32 pasid = pasid_valid ? IOPF_TEST_CONC_PASID : 0;

		for (p = 0; p < iopf_test_nr_partials(i); p++) {
			evt = make_fault(pasid, i, false, pasid_valid);
			if (iommu_report_device_fault(r->dev, &evt))
				r->errors++;
		}
		evt = make_fault(pasid, i, true, pasid_valid);
		if (iommu_report_device_fault(r->dev, &evt))
			r->errors++;
		cond_resched();
	}
	complete(&r->done);

	return 0;
}

/*
 * Several reporters, one per device of a queue, each reporting many groups
 * (with partials, on the RID and on a PASID) to handlers that defer to the
 * queue's workqueue: every last page gets exactly one response, and every
 * group is made of its own faults.
 */
static void iopf_test_concurrent_reporters(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, IOPF_TEST_CONC_DEVS);
	struct iopf_test_handle *h[IOPF_TEST_CONC_DEVS][2];
	struct iopf_test_reporter *r;
	unsigned int i, j, n, started = 0, bad = 0;
	u8 (*seen)[IOPF_TEST_CONC_GROUPS];
	struct iopf_mock_resp resp;
	struct task_struct *task;

	r = kunit_kcalloc(test, IOPF_TEST_CONC_DEVS, sizeof(*r), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, r);
	seen = kunit_kcalloc(test, IOPF_TEST_CONC_DEVS, sizeof(*seen),
			     GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, seen);

	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++) {
		h[i][0] = iopf_test_attach_rid(test, env, env->dev[i],
					       IOPF_TEST_DEFER);
		h[i][1] = iopf_test_attach_pasid(test, env, env->dev[i],
						 IOPF_TEST_CONC_PASID,
						 IOPF_TEST_DEFER);
		for (j = 0; j < 2; j++)
			h[i][j]->check_groups = true;
	}
	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++)
		iopf_test_add_device(test, env->queue, env->dev[i]);

	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++) {
		r[i].dev = env->dev[i];
		init_completion(&r[i].done);
		task = kthread_run(iopf_test_reporter_fn, &r[i],
				   "iopf_kunit_rep%u", i);
		if (IS_ERR(task))
			break;
		started++;
	}
	/* No assertion may end the test while reporters run. */
	for (i = 0; i < started; i++)
		wait_for_completion(&r[i].done);
	KUNIT_ASSERT_EQ(test, started, IOPF_TEST_CONC_DEVS);

	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++) {
		KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(env->dev[i]), 0);
		KUNIT_EXPECT_EQ_MSG(test, r[i].errors, 0, "failed reports, dev %u",
				    i);
		for (j = 0; j < 2; j++) {
			KUNIT_EXPECT_EQ(test, atomic_read(&h[i][j]->bad_groups),
					0);
			KUNIT_EXPECT_EQ(test, iopf_test_deliveries(h[i][j]),
					IOPF_TEST_CONC_GROUPS / 2);
			KUNIT_EXPECT_EQ(test, atomic_read(&h[i][j]->works_done),
					IOPF_TEST_CONC_GROUPS / 2);
		}
	}

	n = iopf_mock_log_count(env->log);
	KUNIT_EXPECT_EQ(test, n, IOPF_TEST_CONC_DEVS * IOPF_TEST_CONC_GROUPS);
	for (i = 0; i < n; i++) {
		u32 grpid, pasid;

		if (!iopf_mock_log_get(env->log, i, &resp))
			break;
		for (j = 0; j < IOPF_TEST_CONC_DEVS; j++)
			if (resp.dev == env->dev[j])
				break;
		grpid = resp.msg.grpid;
		pasid = grpid & 1 ? IOPF_TEST_CONC_PASID : 0;
		if (j == IOPF_TEST_CONC_DEVS || grpid >= IOPF_TEST_CONC_GROUPS ||
		    resp.msg.code != IOMMU_PAGE_RESP_SUCCESS ||
		    resp.msg.pasid != pasid || !resp.has_evt ||
		    resp.fault.prm.grpid != grpid ||
		    !(resp.fault.prm.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)) {
			bad++;
			continue;
		}
		seen[j][grpid]++;
	}
	KUNIT_EXPECT_EQ_MSG(test, bad, 0, "unexpected responses");
	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++)
		for (j = 0; j < IOPF_TEST_CONC_GROUPS; j++)
			KUNIT_EXPECT_EQ_MSG(test, seen[i][j], 1,
					    "responses to dev %u grpid %u", i, j);
}

/* Suite */

static int iopf_test_init(struct kunit *test)
{
	struct iopf_test_env *env;

	env = kunit_kzalloc(test, sizeof(*env), GFP_KERNEL);
	if (!env)
		return -ENOMEM;
	env->log = iopf_mock_log_alloc(test, IOPF_TEST_LOG_SIZE);
	test->priv = env;

	return 0;
}

static void iopf_test_exit(struct kunit *test)
{
	struct iopf_test_env *env = test->priv;

	if (!env)
		return;
	KUNIT_EXPECT_EQ_MSG(test, iopf_mock_log_dropped(env->log), 0,
			    "responses not recorded, the log is too small");
}

static struct kunit_case iopf_test_cases[] = {
	KUNIT_CASE(iopf_test_single_page_inline),
	KUNIT_CASE(iopf_test_multi_page_group),
	KUNIT_CASE(iopf_test_interleaved_groups),
	KUNIT_CASE(iopf_test_partials_per_device),
	KUNIT_CASE(iopf_test_partials_match_grpid_only),
	KUNIT_CASE(iopf_test_partial_bound),
	KUNIT_CASE(iopf_test_lookup_pasid_and_rid),
	KUNIT_CASE(iopf_test_lookup_user_pasid_table),
	KUNIT_CASE(iopf_test_lookup_user_pasid_table_needs_nested),
	KUNIT_CASE(iopf_test_lookup_no_user_pasid_table),
	KUNIT_CASE(iopf_test_lookup_no_handler),
	KUNIT_CASE(iopf_test_no_handler_partial),
	KUNIT_CASE(iopf_test_not_page_request),
	KUNIT_CASE(iopf_test_handler_failure),
	KUNIT_CASE(iopf_test_group_dequeue),
	KUNIT_CASE(iopf_test_double_response),
	KUNIT_CASE(iopf_test_free_without_response),
	KUNIT_CASE(iopf_test_flush_dev_waits),
	KUNIT_CASE(iopf_test_discard_partial),
	KUNIT_CASE(iopf_test_remove_device_pending),
	KUNIT_CASE(iopf_test_report_after_remove),
	KUNIT_CASE(iopf_test_add_device_errors),
	KUNIT_CASE(iopf_test_queue_free_removes_devices),
	KUNIT_CASE(iopf_test_remove_with_work_queued),
	KUNIT_CASE(iopf_test_queue_free_with_work_queued),
	KUNIT_CASE(iopf_test_queue_work_busy),
	KUNIT_CASE(iopf_test_concurrent_reporters),
	{}
};

static struct kunit_suite iopf_test_suite = {
	.name = "iopf",
	.init = iopf_test_init,
	.exit = iopf_test_exit,
	.test_cases = iopf_test_cases,
};
kunit_test_suite(iopf_test_suite);

MODULE_DESCRIPTION("KUnit tests of the IOMMU I/O page fault framework");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("IOMMUFD_INTERNAL");
