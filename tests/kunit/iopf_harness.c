// SPDX-License-Identifier: GPL-2.0
/*
 * The test harness shared by the IOPF KUnit suites: see iopf_harness.h.
 *
 * Only the public API of <linux/iommu.h> is used, so the suites run on
 * io-pgfault.c and on the Rust core alike; of struct iopf_group only the
 * fields that handlers own or read (last_fault, faults, fault_count,
 * attach_handle, work, node) are touched.
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/minmax.h>
#include <linux/preempt.h>
#include <linux/slab.h>

#include "iopf_harness.h"

/* Context */

KUNIT_DEFINE_ACTION_WRAPPER(iopf_h_kvfree_action, kvfree, const void *);
KUNIT_DEFINE_ACTION_WRAPPER(iopf_h_destroy_wq_action, destroy_workqueue,
			    struct workqueue_struct *);
KUNIT_DEFINE_ACTION_WRAPPER(iopf_h_queue_free_action, iopf_queue_free,
			    struct iopf_queue *);

static void *iopf_h_kvcalloc(struct kunit *test, size_t n, size_t size)
{
	void *p = kvcalloc(n, size, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, p);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test,
							iopf_h_kvfree_action,
							p), 0);
	return p;
}

static void iopf_h_handoff_work(struct work_struct *work);

static void iopf_h_tap(void *data, struct device *dev,
		       const struct iopf_fault *evt,
		       const struct iommu_page_response *msg)
{
	struct iopf_h *h = data;
	u64 seq;

	if (h->on_response)
		h->on_response(h->observer, dev, evt, msg);
	if (!h->max_seq)
		return;
	if (!evt ||
	    upper_32_bits(evt->fault.prm.private_data[1]) != IOPF_H_TAG_MAGIC) {
		atomic_inc(&h->untracked);
		return;
	}
	if (msg->pasid != evt->fault.prm.pasid ||
	    msg->grpid != evt->fault.prm.grpid)
		atomic_inc(&h->mismatched);
	seq = iopf_h_seq(&evt->fault);
	if (!seq || seq >= h->max_seq) {
		atomic_inc(&h->untracked);
		return;
	}
	WRITE_ONCE(h->code[seq], msg->code);
	atomic_inc(&h->got[seq]);
}

/**
 * iopf_h_set_tap() - Account the responses of a mock IOMMU in a context
 * @h: the context
 * @mock: a mock IOMMU whose devices belong to @h
 *
 * Done by iopf_h_create() for the context's own mock when it accounts.
 */
void iopf_h_set_tap(struct iopf_h *h, struct iopf_mock_iommu *mock)
{
	iopf_mock_iommu_set_tap(mock, iopf_h_tap, h);
}

/**
 * iopf_h_queue_alloc() - Allocate an IOPF queue freed when the test ends
 * @test: the test
 * @name: the queue's name
 *
 * Return: the queue; asserts on failure.
 */
struct iopf_queue *iopf_h_queue_alloc(struct kunit *test, const char *name)
{
	struct iopf_queue *queue = iopf_queue_alloc(name);

	KUNIT_ASSERT_NOT_NULL(test, queue);
	KUNIT_ASSERT_EQ(test,
			kunit_add_action_or_reset(test, iopf_h_queue_free_action,
						  queue), 0);
	return queue;
}

/**
 * iopf_h_queue_free_now() - Free a queue of iopf_h_queue_alloc() now
 * @test: the test
 * @queue: the queue; the devices still on it are removed by the core
 */
void iopf_h_queue_free_now(struct kunit *test, struct iopf_queue *queue)
{
	kunit_release_action(test, iopf_h_queue_free_action, queue);
}

/**
 * iopf_h_add_dev() - Add a device behind a mock IOMMU to a context
 * @h: the context
 * @mock: the device's mock IOMMU
 *
 * Return: the device, on no queue yet; asserts on failure.
 */
struct iopf_h_dev *iopf_h_add_dev(struct iopf_h *h,
				  struct iopf_mock_iommu *mock)
{
	struct iopf_h_dev *hd;

	KUNIT_ASSERT_LT(h->test, h->ndevs, IOPF_H_MAX_DEVS);
	hd = &h->devs[h->ndevs];
	hd->h = h;
	hd->index = h->ndevs;
	mutex_init(&hd->member);
	INIT_LIST_HEAD(&hd->handles);
	hd->dev = iopf_mock_dev_create(h->test, mock);
	h->ndevs++;

	return hd;
}

/**
 * iopf_h_dev_of() - The harness device of a device
 * @h: the context
 * @dev: a device of @h
 *
 * Return: its struct iopf_h_dev, or NULL if @dev is not one of @h's.
 */
struct iopf_h_dev *iopf_h_dev_of(struct iopf_h *h, struct device *dev)
{
	unsigned int i;

	for (i = 0; i < h->ndevs; i++)
		if (h->devs[i].dev == dev)
			return &h->devs[i];
	return NULL;
}

/**
 * iopf_h_create() - A harness context for a test
 * @test: the test
 * @opts: what the context is made of
 *
 * A mock IOMMU with @opts->ndevs devices (on no queue and with nothing
 * attached yet), an IOPF queue, and what @opts asks for. Everything is
 * released when the test ends, in reverse order of creation: the queue
 * first, then the devices, the mock, and the handoff workqueue last.
 *
 * Return: the context; asserts on failure.
 */
struct iopf_h *iopf_h_create(struct kunit *test, const struct iopf_h_opts *opts)
{
	struct iopf_h *h;
	unsigned int i;

	h = kunit_kzalloc(test, sizeof(*h), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, h);
	h->test = test;
	h->group_size = opts->group_size;
	spin_lock_init(&h->lock);
	INIT_LIST_HEAD(&h->handoff);
	INIT_WORK(&h->handoff_work, iopf_h_handoff_work);
	atomic_set(&h->handoffs, 0);
	init_waitqueue_head(&h->handoff_wait);

	if (opts->max_seq) {
		h->max_seq = opts->max_seq;
		h->got = iopf_h_kvcalloc(test, h->max_seq, sizeof(*h->got));
		h->expect = iopf_h_kvcalloc(test, h->max_seq, 1);
		h->codes_ok = iopf_h_kvcalloc(test, h->max_seq, 1);
		h->code = iopf_h_kvcalloc(test, h->max_seq, 1);
	}
	if (opts->handoff) {
		h->wq = alloc_workqueue("iopf_h_handoff", WQ_UNBOUND, 0);
		KUNIT_ASSERT_NOT_NULL(test, h->wq);
		KUNIT_ASSERT_EQ(test,
				kunit_add_action_or_reset(test,
							  iopf_h_destroy_wq_action,
							  h->wq), 0);
	}

	h->log = opts->log ?: iopf_mock_log_alloc(test, max(opts->log_size, 1U));
	h->mock = iopf_mock_iommu_create(test, opts->mock_flags, h->log);
	if (h->max_seq)
		iopf_h_set_tap(h, h->mock);
	for (i = 0; i < opts->ndevs; i++)
		iopf_h_add_dev(h, h->mock);
	h->queue = iopf_h_queue_alloc(test, "iopf-kunit");

	return h;
}

/* Faults */

/**
 * iopf_h_seq() - The sequence number of a request built by iopf_h_fault()
 * @f: the request
 *
 * Return: its sequence number, 0 if it is not tracked.
 */
u64 iopf_h_seq(const struct iommu_fault *f)
{
	return f->prm.private_data[0];
}

/**
 * iopf_h_fault() - Build a page request
 * @h: the context, which numbers the request
 * @pasid: its PASID
 * @pasid_valid: whether it has a PASID (and needs one in its response)
 * @grpid: its page request group index
 * @last: whether it is the last request of its group
 * @tag: IOPF_H_TAG_* bits, a mode and a code for the handler
 * @expect: responses the accounting expects (0 or 1, or IOPF_H_UNCHECKED)
 * @codes_ok: the response codes it accepts, IOPF_H_OK | ...
 *
 * Every request gets the next sequence number of @h (private_data[0]) and a
 * page address of its own made from it, which identifies it in the response
 * log and in the groups.
 *
 * Return: the request, ready for iommu_report_device_fault().
 */
struct iopf_fault iopf_h_fault(struct iopf_h *h, u32 pasid, bool pasid_valid,
			       u32 grpid, bool last, u32 tag, u8 expect,
			       u8 codes_ok)
{
	u64 seq = atomic_inc_return(&h->next_seq);
	struct iopf_fault evt;

	if (h->max_seq && seq >= h->max_seq) {
		atomic_inc(&h->seq_overflow);
		seq = 0;
	} else if (h->max_seq) {
		h->expect[seq] = expect;
		h->codes_ok[seq] = codes_ok;
	}

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
	evt.fault.prm.addr = (seq + 1) << PAGE_SHIFT;
	evt.fault.prm.private_data[0] = seq;
	evt.fault.prm.private_data[1] = (u64)IOPF_H_TAG_MAGIC << 32 | tag;
	INIT_LIST_HEAD(&evt.list);

	return evt;
}

/**
 * iopf_h_fault_eq() - Whether two faults carry the same data
 * @a: a fault
 * @b: another
 *
 * Return: true if every field of the page request is the same.
 */
bool iopf_h_fault_eq(const struct iommu_fault *a, const struct iommu_fault *b)
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

/**
 * iopf_h_report() - Report a fault and expect a return value
 * @h: the context, which counts the report in h->faults
 * @dev: the device
 * @evt: the fault
 * @expected: what iommu_report_device_fault() must return, or
 *            IOPF_H_ANY_RET to leave it to the caller
 *
 * Return: what iommu_report_device_fault() returned.
 */
int iopf_h_report(struct iopf_h *h, struct device *dev, struct iopf_fault *evt,
		  int expected)
{
	int ret = iommu_report_device_fault(dev, evt);

	h->faults++;
	if (expected != IOPF_H_ANY_RET)
		KUNIT_EXPECT_EQ_MSG(h->test, ret, expected,
				    "report of pasid %u grpid %u%s",
				    evt->fault.prm.pasid, evt->fault.prm.grpid,
				    evt->fault.prm.flags &
				    IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE ?
				    " (last)" : "");
	return ret;
}

/**
 * iopf_h_group_ok() - Whether a group is consistent
 * @h: the context
 * @group: a group, as its handler got it
 *
 * Return: true if its requests are this harness's, of one grpid and PASID,
 * in the order they were built (sequence numbers grow; untracked ones are
 * not compared), with the Last Page flag on the last one only, which is
 * last_fault, all counted in fault_count, and as many as h->group_size()
 * wants if it is set.
 */
bool iopf_h_group_ok(struct iopf_h *h, struct iopf_group *group)
{
	const struct iommu_fault *last = &group->last_fault.fault;
	struct iopf_fault *iopf;
	size_t n = 0;
	u64 prev = 0;

	list_for_each_entry(iopf, &group->faults, list) {
		const struct iommu_fault *f = &iopf->fault;
		bool is_last = list_is_last(&iopf->list, &group->faults);
		u64 seq = iopf_h_seq(f);

		if (upper_32_bits(f->prm.private_data[1]) != IOPF_H_TAG_MAGIC ||
		    f->prm.grpid != last->prm.grpid ||
		    f->prm.pasid != last->prm.pasid ||
		    !!(f->prm.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE) !=
		    is_last ||
		    (seq && seq <= prev) ||
		    (is_last && !iopf_h_fault_eq(f, last)))
			return false;
		if (seq)
			prev = seq;
		n++;
	}

	return n && n == group->fault_count &&
	       (!h->group_size || n == h->group_size(last->prm.grpid));
}

/* The handler */

static struct iopf_h_handle *to_iopf_h_handle(struct iommu_attach_handle *h)
{
	return container_of(h, struct iopf_h_handle, handle);
}

/* The group's tag, if the harness built its last request. */
static u32 iopf_h_tag(struct iopf_group *group)
{
	u64 tag = group->last_fault.fault.prm.private_data[1];

	return upper_32_bits(tag) == IOPF_H_TAG_MAGIC ? lower_32_bits(tag) : 0;
}

static enum iopf_h_mode iopf_h_group_mode(struct iopf_h_handle *hh,
					  struct iopf_group *group)
{
	u32 tag = iopf_h_tag(group);

	if (tag & IOPF_H_TAG_OWN_MODE)
		return tag & IOPF_H_TAG_MODE_MASK;
	return hh->mode;
}

static enum iommu_page_response_code
iopf_h_group_code(struct iopf_h_handle *hh, struct iopf_group *group)
{
	u32 tag = iopf_h_tag(group);

	if (tag & IOPF_H_TAG_OWN_CODE)
		return (tag >> IOPF_H_TAG_CODE_SHIFT) & 0xff;
	return hh->code;
}

/**
 * iopf_h_answer() - Answer a group and free it, as its handler
 * @hh: the handle of the group's domain
 * @group: the group
 * @code: the response
 *
 * hh->answered, if set, is called between the response and the free.
 */
void iopf_h_answer(struct iopf_h_handle *hh, struct iopf_group *group,
		   enum iommu_page_response_code code)
{
	iopf_group_response(group, code);
	if (hh->answered)
		hh->answered(hh, group);
	iopf_free_group(group);
}

static void iopf_h_record(struct iopf_h_handle *hh, struct iopf_group *group)
{
	struct iopf_h_delivery *d = NULL;
	struct iopf_fault *iopf;
	unsigned long flags;

	spin_lock_irqsave(&hh->lock, flags);
	if (hh->ndeliveries < IOPF_H_MAX_DELIVERIES)
		d = &hh->deliveries[hh->ndeliveries];
	hh->ndeliveries++;
	if (d) {
		d->fault_count = group->fault_count;
		d->last = group->last_fault.fault;
		d->nfaults = 0;
		list_for_each_entry(iopf, &group->faults, list) {
			if (d->nfaults < IOPF_H_MAX_GROUP_FAULTS)
				d->faults[d->nfaults] = iopf->fault;
			d->nfaults++;
		}
	}
	spin_unlock_irqrestore(&hh->lock, flags);
}

/* Snapshot of a group tagged IOPF_H_TAG_RECORD, by sequence numbers. */
static void iopf_h_record_seqs(struct iopf_h *h, struct iopf_group *group)
{
	struct iopf_fault *iopf;
	unsigned long flags;

	spin_lock_irqsave(&h->lock, flags);
	h->rec_last = iopf_h_seq(&group->last_fault.fault);
	h->rec_fault_count = group->fault_count;
	h->rec_nfaults = 0;
	list_for_each_entry(iopf, &group->faults, list) {
		if (h->rec_nfaults < IOPF_H_MAX_GROUP_FAULTS)
			h->rec_seqs[h->rec_nfaults] = iopf_h_seq(&iopf->fault);
		h->rec_nfaults++;
	}
	spin_unlock_irqrestore(&h->lock, flags);
}

static void iopf_h_keep(struct iopf_h_handle *hh, struct iopf_group *group)
{
	list_add_tail(&group->node, &hh->kept);
	hh->nkept++;
}

static void iopf_h_work(struct work_struct *work)
{
	struct iopf_group *group = container_of(work, struct iopf_group, work);
	struct iopf_h_handle *hh = to_iopf_h_handle(group->attach_handle);

	if (!hh->record) {
		iopf_h_answer(hh, group, iopf_h_group_code(hh, group));
		return;
	}
	complete(&hh->work_started);
	if (hh->hold_work)
		wait_for_completion(&hh->work_release);
	if (hh->work_delay_ms)
		msleep(hh->work_delay_ms);
	/* queue_twice: the test answers and frees the group, once it ran. */
	if (!hh->queue_twice)
		iopf_h_answer(hh, group, iopf_h_group_code(hh, group));
	atomic_inc(&hh->works_done);
	complete(&hh->work_done);
}

static void iopf_h_handoff_work(struct work_struct *work)
{
	struct iopf_h *h = container_of(work, struct iopf_h, handoff_work);
	struct iopf_group *group;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&h->lock, flags);
		group = list_first_entry_or_null(&h->handoff, struct iopf_group,
						 node);
		if (group)
			list_del_init(&group->node);
		spin_unlock_irqrestore(&h->lock, flags);
		if (!group)
			return;
		iopf_h_answer(to_iopf_h_handle(group->attach_handle), group,
			      iopf_h_group_code(to_iopf_h_handle(group->attach_handle),
						group));
		if (atomic_dec_and_test(&h->handoffs))
			wake_up_all(&h->handoff_wait);
	}
}

/**
 * iopf_h_handoff_flush() - Wait until every handed-off group is answered
 * @h: the context, with a handoff workqueue
 *
 * flush_workqueue() alone does not do: the groups of every handle share one
 * work item, and queue_work() returns false as soon as another thread has
 * set its pending bit, possibly before that thread has put it on the
 * workqueue, where a flush would find it. A reporter whose queue_work() saw
 * the pending bit could then flush an empty workqueue and return while its
 * group is still on the handoff list, answered later.
 */
void iopf_h_handoff_flush(struct iopf_h *h)
{
	flush_workqueue(h->wq);
	wait_event(h->handoff_wait, !atomic_read(&h->handoffs));
}

/**
 * iopf_h_handler() - The iopf_handler of the harness's domains
 * @group: a complete group
 *
 * Acts as the group's mode says (its tag's, or its handle's), after the
 * bookkeeping its handle asks for: the record of the group, its
 * consistency check, the observer of the context.
 *
 * Return: 0 if the group is taken care of, an error for the core to answer
 * it FAILURE.
 */
int iopf_h_handler(struct iopf_group *group)
{
	struct iopf_h_handle *hh = to_iopf_h_handle(group->attach_handle);
	enum iopf_h_mode mode = iopf_h_group_mode(hh, group);
	struct iopf_h *h = hh->h;
	unsigned long flags;
	u32 tag;
	int ret;

	if (hh->check_groups && !iopf_h_group_ok(h, group))
		atomic_inc(&h->bad_groups);
	if (hh->record) {
		tag = iopf_h_tag(group);
		atomic_inc(&h->delivered);
		iopf_h_record(hh, group);
		if (tag & IOPF_H_TAG_RECORD)
			iopf_h_record_seqs(h, group);
		if (tag & IOPF_H_TAG_SUM)
			atomic64_add(group->fault_count - 1,
				     &h->partials_delivered);
	}
	if (h->on_group)
		h->on_group(h->observer, hh, group, mode);

	switch (mode) {
	case IOPF_H_ANSWER:
		iopf_h_answer(hh, group, iopf_h_group_code(hh, group));
		return 0;
	case IOPF_H_DEFER:
		if (!hh->queue_twice)
			return iopf_queue_work(group, iopf_h_work);
		/*
		 * Without preemption (iopf_queue_work() does not sleep), so that
		 * on one CPU the work item cannot start between the two calls.
		 */
		preempt_disable();
		ret = iopf_queue_work(group, iopf_h_work);
		if (!ret) {
			hh->started_before_second =
				completion_done(&hh->work_started);
			hh->second_queue_ret = iopf_queue_work(group, iopf_h_work);
		}
		preempt_enable();
		if (!ret) {
			/* The test answers the group once the work item ran. */
			spin_lock_irqsave(&hh->lock, flags);
			iopf_h_keep(hh, group);
			spin_unlock_irqrestore(&hh->lock, flags);
		}
		return ret;
	case IOPF_H_HANDOFF:
		iopf_group_dequeue(group);
		atomic_inc(&h->handoffs);
		spin_lock_irqsave(&h->lock, flags);
		list_add_tail(&group->node, &h->handoff);
		spin_unlock_irqrestore(&h->lock, flags);
		queue_work(h->wq, &h->handoff_work);
		return 0;
	case IOPF_H_KEEP:
		if (hh->keep_under_member)
			lockdep_assert_held(&hh->hd->member);
		if (hh->dequeue)
			iopf_group_dequeue(group);
		spin_lock_irqsave(&hh->lock, flags);
		if (hh->max_kept && hh->nkept >= hh->max_kept) {
			spin_unlock_irqrestore(&hh->lock, flags);
			return -ENOSPC;
		}
		iopf_h_keep(hh, group);
		spin_unlock_irqrestore(&hh->lock, flags);
		return 0;
	case IOPF_H_FAIL:
		return -EIO;
	default:
		return -EINVAL;
	}
}

/* Handles */

/**
 * iopf_h_handle_init() - Initialise a handle before its domain is attached
 * @h: the context
 * @hh: the handle
 * @hd: the device it is for, whose removal gives up its kept groups
 * @mode: what the handler does with its groups
 *
 * The handler answers IOMMU_PAGE_RESP_SUCCESS and records every group.
 */
void iopf_h_handle_init(struct iopf_h *h, struct iopf_h_handle *hh,
			struct iopf_h_dev *hd, enum iopf_h_mode mode)
{
	memset(hh, 0, sizeof(*hh));
	hh->h = h;
	hh->hd = hd;
	hh->mode = mode;
	hh->code = IOMMU_PAGE_RESP_SUCCESS;
	hh->record = true;
	spin_lock_init(&hh->lock);
	INIT_LIST_HEAD(&hh->kept);
	INIT_LIST_HEAD(&hh->dev_node);
	atomic_set(&hh->works_done, 0);
	init_completion(&hh->work_started);
	init_completion(&hh->work_release);
	init_completion(&hh->work_done);
	if (hd)
		list_add_tail(&hh->dev_node, &hd->handles);
}

/**
 * iopf_h_attach() - Attach a new domain with a new handle
 * @h: the context
 * @mock: the mock IOMMU of @dev
 * @dev: the device
 * @pasid: the PASID, or IOMMU_NO_PASID for the RID
 * @type: the domain's type, IOMMU_DOMAIN_UNMANAGED or IOMMU_DOMAIN_NESTED
 * @handler: whether the domain has the harness's iopf_handler
 * @mode: what the handler does with a group
 *
 * Detached when the test ends, or by iopf_h_detach().
 *
 * Return: the handle; asserts on failure.
 */
struct iopf_h_handle *iopf_h_attach(struct iopf_h *h,
				    struct iopf_mock_iommu *mock,
				    struct device *dev, ioasid_t pasid,
				    unsigned int type, bool handler,
				    enum iopf_h_mode mode)
{
	struct iommu_domain *domain;
	struct iopf_h_handle *hh;

	hh = kunit_kzalloc(h->test, sizeof(*hh), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(h->test, hh);
	iopf_h_handle_init(h, hh, iopf_h_dev_of(h, dev), mode);

	domain = iopf_mock_domain_alloc(h->test, mock, type,
					handler ? iopf_h_handler : NULL);
	if (pasid == IOMMU_NO_PASID)
		hh->attach = iopf_mock_attach_rid(h->test, domain, dev,
						  &hh->handle);
	else
		hh->attach = iopf_mock_attach_pasid(h->test, domain, dev, pasid,
						    &hh->handle);

	return hh;
}

/**
 * iopf_h_attach_rid() - Attach a domain with the handler to a device's RID
 * @h: the context
 * @dev: a device of the context's mock
 * @mode: what the handler does with a group
 *
 * Return: the handle; asserts on failure.
 */
struct iopf_h_handle *iopf_h_attach_rid(struct iopf_h *h, struct device *dev,
					enum iopf_h_mode mode)
{
	return iopf_h_attach(h, h->mock, dev, IOMMU_NO_PASID,
			     IOMMU_DOMAIN_UNMANAGED, true, mode);
}

/**
 * iopf_h_attach_pasid() - Attach a domain with the handler to a PASID
 * @h: the context
 * @dev: a device of the context's mock
 * @pasid: the PASID
 * @mode: what the handler does with a group
 *
 * Return: the handle; asserts on failure.
 */
struct iopf_h_handle *iopf_h_attach_pasid(struct iopf_h *h, struct device *dev,
					  ioasid_t pasid, enum iopf_h_mode mode)
{
	return iopf_h_attach(h, h->mock, dev, pasid, IOMMU_DOMAIN_UNMANAGED,
			     true, mode);
}

/**
 * iopf_h_detach() - Detach a handle of iopf_h_attach() now
 * @hh: the handle
 */
void iopf_h_detach(struct iopf_h_handle *hh)
{
	iopf_mock_detach(hh->h->test, hh->attach);
}

/**
 * iopf_h_deliveries() - Groups a handle's handler received
 * @hh: the handle
 *
 * Return: how many, recorded in hh->deliveries[] or not.
 */
unsigned int iopf_h_deliveries(struct iopf_h_handle *hh)
{
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&hh->lock, flags);
	n = hh->ndeliveries;
	spin_unlock_irqrestore(&hh->lock, flags);

	return n;
}

/**
 * iopf_h_expect_group() - Expect what a group delivered to a handle held
 * @test: the test
 * @hh: the handle
 * @idx: which of its groups, in the order delivered
 * @faults: the requests the group must hold, in order, the last one last
 * @n: how many
 */
void iopf_h_expect_group(struct kunit *test, struct iopf_h_handle *hh,
			 unsigned int idx, const struct iopf_fault *const *faults,
			 unsigned int n)
{
	const struct iopf_h_delivery *d;
	unsigned int i;

	KUNIT_ASSERT_LT_MSG(test, idx, iopf_h_deliveries(hh),
			    "handler call #%u missing", idx);
	KUNIT_ASSERT_LT(test, idx, IOPF_H_MAX_DELIVERIES);
	d = &hh->deliveries[idx];

	KUNIT_EXPECT_EQ_MSG(test, d->fault_count, (size_t)n,
			    "fault_count of group #%u", idx);
	KUNIT_EXPECT_EQ_MSG(test, d->nfaults, n, "faults listed in group #%u",
			    idx);
	KUNIT_EXPECT_TRUE_MSG(test,
			      iopf_h_fault_eq(&d->last, &faults[n - 1]->fault),
			      "last_fault of group #%u: addr %#llx, expected %#llx",
			      idx, d->last.prm.addr,
			      faults[n - 1]->fault.prm.addr);
	for (i = 0; i < min3(d->nfaults, n, IOPF_H_MAX_GROUP_FAULTS); i++)
		KUNIT_EXPECT_TRUE_MSG(test,
				      iopf_h_fault_eq(&d->faults[i],
						      &faults[i]->fault),
				      "fault %u of group #%u: addr %#llx, expected %#llx",
				      i, idx, d->faults[i].prm.addr,
				      faults[i]->fault.prm.addr);
}

/* Kept groups */

/**
 * iopf_h_nkept() - Groups a handle keeps
 * @hh: the handle
 *
 * Return: how many groups its handler kept and nobody took yet.
 */
unsigned int iopf_h_nkept(struct iopf_h_handle *hh)
{
	unsigned long flags;
	unsigned int n;

	spin_lock_irqsave(&hh->lock, flags);
	n = hh->nkept;
	spin_unlock_irqrestore(&hh->lock, flags);

	return n;
}

/**
 * iopf_h_kept_pop() - Take the oldest group a handle keeps
 * @hh: the handle
 *
 * Return: the group, now the caller's to answer and free, or NULL.
 */
struct iopf_group *iopf_h_kept_pop(struct iopf_h_handle *hh)
{
	struct iopf_group *group;
	unsigned long flags;

	spin_lock_irqsave(&hh->lock, flags);
	group = list_first_entry_or_null(&hh->kept, struct iopf_group, node);
	if (group) {
		list_del_init(&group->node);
		hh->nkept--;
	}
	spin_unlock_irqrestore(&hh->lock, flags);

	return group;
}

/**
 * iopf_h_answer_kept() - Answer and free every group a handle keeps
 * @hh: the handle
 * @code: the response
 *
 * Return: how many groups were answered.
 */
unsigned int iopf_h_answer_kept(struct iopf_h_handle *hh,
				enum iommu_page_response_code code)
{
	struct iopf_group *group;
	unsigned int n = 0;

	while ((group = iopf_h_kept_pop(hh))) {
		iopf_h_answer(hh, group, code);
		n++;
	}
	return n;
}

/**
 * iopf_h_release_kept() - Give up the kept groups a removal answered
 * @hh: the handle, whose kept groups were pending when their device left
 *      its queue
 *
 * io-pgfault.c freed them in iopf_queue_remove_device(), so the list only
 * links freed memory, which is not to be read; the Rust core left them to
 * their handler (iopf_mock_release_removed_group()).
 */
void iopf_h_release_kept(struct iopf_h_handle *hh)
{
	struct iopf_group *group;
	unsigned long flags;

	if (!IS_ENABLED(CONFIG_IOMMU_IOPF_RUST)) {
		spin_lock_irqsave(&hh->lock, flags);
		INIT_LIST_HEAD(&hh->kept);
		hh->nkept = 0;
		spin_unlock_irqrestore(&hh->lock, flags);
		return;
	}
	while ((group = iopf_h_kept_pop(hh)))
		iopf_mock_release_removed_group(group);
}

/* Queue membership */

/**
 * iopf_h_dev_add() - Add a device to a queue
 * @hd: the device
 * @queue: the queue
 *
 * Return: what iopf_queue_add_device() returned.
 */
int iopf_h_dev_add(struct iopf_h_dev *hd, struct iopf_queue *queue)
{
	int ret = iopf_queue_add_device(queue, hd->dev);

	if (!ret)
		hd->queue = queue;
	return ret;
}

/**
 * iopf_h_dev_remove() - Take a device off its queue, as drivers do
 * @hd: the device, on a queue or not
 *
 * Flushes the device's queue first (no work item of its groups may outlive
 * the removal), removes it, then gives up the groups that its handles kept
 * pending and that the removal answered (iopf_h_release_kept()); the groups
 * of handles that dequeue them stay theirs. The caller serialises this with
 * the device's reports (hd->member, or a single thread).
 */
void iopf_h_dev_remove(struct iopf_h_dev *hd)
{
	struct iopf_h_handle *hh;

	if (!hd->queue)
		return;
	iopf_queue_flush_dev(hd->dev);
	iopf_queue_remove_device(hd->queue, hd->dev);
	list_for_each_entry(hh, &hd->handles, dev_node)
		if (!hh->dequeue)
			iopf_h_release_kept(hh);
	hd->queue = NULL;
}

static void iopf_h_remove_action(void *data)
{
	struct iopf_h_member *m = data;
	struct iopf_h_dev *hd = m->hd;

	if (hd->h->wq)
		flush_workqueue(hd->h->wq);
	mutex_lock(&hd->member);
	if (hd->queue == m->queue)
		iopf_h_dev_remove(hd);
	mutex_unlock(&hd->member);
}

/**
 * iopf_h_add() - Add a device to a queue until the test ends
 * @hd: the device
 * @queue: the queue
 *
 * Attach first, then add: the teardown, in reverse order, removes the device
 * from its queue (iopf_h_dev_remove()) before it detaches its domains.
 *
 * Return: the membership, for iopf_h_remove(); asserts on failure.
 */
struct iopf_h_member *iopf_h_add(struct iopf_h_dev *hd,
				 struct iopf_queue *queue)
{
	mutex_lock(&hd->member);
	KUNIT_EXPECT_EQ(hd->h->test, iopf_h_dev_add(hd, queue), 0);
	mutex_unlock(&hd->member);

	return iopf_h_adopt(hd);
}

/**
 * iopf_h_adopt() - Remove a device from its queue when the test ends
 * @hd: a device that the test added to a queue (hd->queue)
 *
 * Return: the membership, for iopf_h_remove(); asserts on failure.
 */
struct iopf_h_member *iopf_h_adopt(struct iopf_h_dev *hd)
{
	struct kunit *test = hd->h->test;
	struct iopf_h_member *m;

	m = kunit_kzalloc(test, sizeof(*m), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, m);
	m->hd = hd;
	m->queue = hd->queue;
	KUNIT_ASSERT_EQ(test,
			kunit_add_action_or_reset(test, iopf_h_remove_action, m),
			0);

	return m;
}

/**
 * iopf_h_remove() - Flush and remove a device of iopf_h_add() now
 * @m: its membership
 */
void iopf_h_remove(struct iopf_h_member *m)
{
	kunit_release_action(m->hd->h->test, iopf_h_remove_action, m);
}

/**
 * iopf_h_forget_member() - The device left its queue without the harness
 * @m: its membership, whose queue is freed with the device on it
 */
void iopf_h_forget_member(struct iopf_h_member *m)
{
	kunit_remove_action(m->hd->h->test, iopf_h_remove_action, m);
	m->hd->queue = NULL;
}

/* Response log of the mock */

/**
 * iopf_h_expect_resp() - Expect a response of the mock's log
 * @test: the test
 * @log: the log
 * @idx: the response's index in the log
 * @dev: the device it must be for
 * @evt: the request it must answer
 * @code: its code
 */
void iopf_h_expect_resp(struct kunit *test, struct iopf_mock_log *log,
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
	KUNIT_EXPECT_TRUE_MSG(test, iopf_h_fault_eq(&r.fault, &evt->fault),
			      "response #%u: event addr %#llx, expected %#llx",
			      idx, r.fault.prm.addr, evt->fault.prm.addr);
}

/**
 * iopf_h_expect_resp_once() - Expect exactly one response to a request
 * @test: the test
 * @log: the mock's log
 * @dev: the device it must be for
 * @evt: the request
 * @code: its code
 */
void iopf_h_expect_resp_once(struct kunit *test, struct iopf_mock_log *log,
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
		iopf_h_expect_resp(test, log, idx, dev, evt, code);
}

/**
 * iopf_h_expect_log_count() - Expect a number of responses in the log
 * @test: the test
 * @log: the mock's log
 * @count: how many responses it must have recorded
 */
void iopf_h_expect_log_count(struct kunit *test, struct iopf_mock_log *log,
			     unsigned int count)
{
	KUNIT_EXPECT_EQ_MSG(test, iopf_mock_log_count(log), count,
			    "number of page responses");
}

/* Accounting */

/**
 * iopf_h_got() - Responses a request got
 * @h: the accounting context
 * @evt: a request built by iopf_h_fault() on @h
 *
 * Return: how many page responses answered it.
 */
unsigned int iopf_h_got(struct iopf_h *h, const struct iopf_fault *evt)
{
	u64 seq = iopf_h_seq(&evt->fault);

	return seq && seq < h->max_seq ? atomic_read(&h->got[seq]) : 0;
}

/**
 * iopf_h_code() - The code of a request's last response
 * @h: the accounting context
 * @evt: a request built by iopf_h_fault() on @h
 *
 * Return: the code, 0 (SUCCESS) if it got none.
 */
u32 iopf_h_code(struct iopf_h *h, const struct iopf_fault *evt)
{
	u64 seq = iopf_h_seq(&evt->fault);

	return seq && seq < h->max_seq ? READ_ONCE(h->code[seq]) : 0;
}

/**
 * iopf_h_responses() - Every response the accounting saw
 * @h: the accounting context
 *
 * Return: the responses so far, to tracked requests or not.
 */
unsigned long iopf_h_responses(struct iopf_h *h)
{
	unsigned long n = atomic_read(&h->untracked);
	unsigned int seq, last = atomic_read(&h->next_seq);

	for (seq = 1; seq <= last && seq < h->max_seq; seq++)
		n += atomic_read(&h->got[seq]);
	return n;
}

/**
 * iopf_h_expect_got() - Expect the responses of one request
 * @test: the test
 * @h: the accounting context
 * @evt: the request
 * @n: how many responses it must have got
 * @code: the code of its response, if @n
 */
void iopf_h_expect_got(struct kunit *test, struct iopf_h *h,
		       const struct iopf_fault *evt, unsigned int n, u32 code)
{
	KUNIT_EXPECT_EQ_MSG(test, iopf_h_got(h, evt), n,
			    "responses to seq %llu (grpid %u)",
			    iopf_h_seq(&evt->fault), evt->fault.prm.grpid);
	if (n && iopf_h_got(h, evt))
		KUNIT_EXPECT_EQ_MSG(test, iopf_h_code(h, evt), code,
				    "response code of seq %llu",
				    iopf_h_seq(&evt->fault));
}

/**
 * iopf_h_account_reset() - Start the accounting afresh
 * @h: the accounting context
 *
 * Every sequence number is forgotten, and numbering restarts at 1: nothing
 * may be reported or answered concurrently.
 */
void iopf_h_account_reset(struct iopf_h *h)
{
	unsigned int seq, last = atomic_read(&h->next_seq);

	for (seq = 0; seq <= last && seq < h->max_seq; seq++) {
		atomic_set(&h->got[seq], 0);
		h->expect[seq] = 0;
		h->codes_ok[seq] = 0;
		h->code[seq] = 0;
	}
	atomic_set(&h->next_seq, 0);
	atomic_set(&h->untracked, 0);
	atomic_set(&h->mismatched, 0);
	atomic_set(&h->seq_overflow, 0);
}

/**
 * iopf_h_tally() - Add up the responses of every request so far
 * @h: the accounting context
 * @t: where to add them
 *
 * A request that expected one response and got none is lost; responses
 * beyond the expected ones, and responses to no request of @h, are
 * duplicated; a response whose code the request does not accept is wrong.
 */
void iopf_h_tally(struct iopf_h *h, struct iopf_h_tally *t)
{
	unsigned int seq, last = atomic_read(&h->next_seq);

	for (seq = 1; seq <= last && seq < h->max_seq; seq++) {
		unsigned int got = atomic_read(&h->got[seq]);

		if (h->expect[seq] == IOPF_H_UNCHECKED)
			continue;
		if (h->expect[seq] && !got)
			t->lost++;
		if (got > h->expect[seq])
			t->duplicated += got - h->expect[seq];
		if (got && (h->code[seq] >= 8 ||
			    !(h->codes_ok[seq] & BIT(h->code[seq]))))
			t->wrong++;
	}
	t->duplicated += atomic_read(&h->untracked);
	t->mismatched += atomic_read(&h->mismatched);
	t->bad_groups += atomic_read(&h->bad_groups);
	t->seq_overflow += atomic_read(&h->seq_overflow);
}

/**
 * iopf_h_expect_tally() - Expect nothing lost, duplicated or unexpected
 * @test: the test
 * @t: the tally
 */
void iopf_h_expect_tally(struct kunit *test, const struct iopf_h_tally *t)
{
	KUNIT_EXPECT_EQ_MSG(test, t->lost, 0, "last requests without a response");
	KUNIT_EXPECT_EQ_MSG(test, t->duplicated, 0,
			    "responses beyond one per request");
	KUNIT_EXPECT_EQ_MSG(test, t->wrong, 0,
			    "responses with an unexpected code");
	KUNIT_EXPECT_EQ(test, t->mismatched, 0);
	KUNIT_EXPECT_EQ(test, t->bad_groups, 0);
	KUNIT_EXPECT_EQ(test, t->seq_overflow, 0);
}

/**
 * iopf_h_account() - Account every response of the test, and expect none
 *                    lost, duplicated or unexpected
 * @h: the accounting context
 * @suite: the prefix of the diagnostic line
 * @extra: more "key=value" figures for the line, or NULL
 *
 * Prints one line, which `cargo xtask test` sums:
 * "# SUITE: case=NAME scenarios=N faults=N injected=N lost=N duplicated=N".
 */
void iopf_h_account(struct iopf_h *h, const char *suite, const char *extra)
{
	struct iopf_h_tally t = {};
	struct kunit *test = h->test;

	iopf_h_tally(h, &t);
	kunit_log(KERN_INFO, test, KUNIT_SUBTEST_INDENT
		  "# %s: case=%s scenarios=%u faults=%llu injected=%u lost=%llu duplicated=%llu%s%s\n",
		  suite, test->name, h->scenarios, h->faults, h->injected,
		  t.lost, t.duplicated, extra ? " " : "", extra ?: "");
	iopf_h_expect_tally(test, &t);
}

/* Threads */

static int iopf_h_thread_fn(void *data)
{
	struct iopf_h_thread *t = data;

	t->fn(t->arg);
	complete(&t->done);
	return 0;
}

/**
 * iopf_h_thread_start() - Run a function in a kthread of a set
 * @ts: the set, zeroed before its first thread
 * @fn: the function
 * @arg: its argument
 * @name: the thread's name, followed by @index
 * @index: a number for the name
 *
 * The caller must wait for the set (iopf_h_threads_wait()) before anything
 * the threads use goes, and before any assertion may end the test.
 *
 * Return: whether the thread runs.
 */
bool iopf_h_thread_start(struct iopf_h_threads *ts, int (*fn)(void *arg),
			 void *arg, const char *name, unsigned int index)
{
	struct iopf_h_thread *t;
	struct task_struct *task;

	if (ts->started >= IOPF_H_MAX_THREADS)
		return false;
	t = &ts->t[ts->started];
	t->fn = fn;
	t->arg = arg;
	init_completion(&t->done);
	task = kthread_run(iopf_h_thread_fn, t, "%s%u", name, index);
	if (IS_ERR(task))
		return false;
	ts->started++;
	return true;
}

/**
 * iopf_h_threads_wait() - Wait until every thread of a set returned
 * @ts: the set
 */
void iopf_h_threads_wait(struct iopf_h_threads *ts)
{
	unsigned int i;

	for (i = 0; i < ts->started; i++)
		wait_for_completion(&ts->t[i].done);
}
