// SPDX-License-Identifier: GPL-2.0
/*
 * Reliability suite of the IOMMU I/O page fault framework: bad input,
 * allocation failures and concurrency, with every response accounted for.
 *
 * Like the iopf suite, it drives only the public API of <linux/iommu.h>
 * through the mock IOMMU and the shared test harness (iopf_harness.h), so it
 * runs on io-pgfault.c and on the Rust core. Every request carries a
 * sequence number; the harness's page_response tap counts the responses per
 * sequence number, so that at the end of each case a request that expected
 * one response and got none is "lost", and any response beyond the expected
 * one is "duplicated".
 *
 * Each case ends with one diagnostic line that `cargo xtask test` sums:
 *   # iopf_reliability: case=NAME scenarios=N faults=N injected=N lost=N duplicated=N
 *
 * Where io-pgfault.c and the Rust core differ by design, the case states what
 * each does (IS_ENABLED(CONFIG_IOMMU_IOPF_RUST)). Where io-pgfault.c would
 * WARN or crash on the input (it treats it as a driver bug), the case is
 * skipped on C with the reason: the test runner fails on any WARNING.
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/vmstat.h>

#include "iopf_harness.h"

#define SUITE			"iopf_reliability"
#define REL_MAX_SEQ		65536
#define REL_MAX_DEVS		4
#define REL_PASID		3

/* What the handler does with a group: the mode of the last request's tag. */
#define REL_ANSWER		IOPF_H_MODE(IOPF_H_ANSWER)
#define REL_KEEP		IOPF_H_MODE(IOPF_H_KEEP)
/* The handler snapshots the group (iopf_h::rec_*). */
#define REL_RECORD		IOPF_H_TAG_RECORD
/* The handler adds the group's partials to iopf_h::partials_delivered. */
#define REL_SUM			IOPF_H_TAG_SUM

struct rel_ctx;

/* A device, and the handles of its RID and of REL_PASID once attached. */
struct rel_dev {
	struct rel_ctx *ctx;
	struct iopf_h_dev *hd;
	struct device *dev;
	struct iopf_h_handle *rid;
	struct iopf_h_handle *pasid;
	bool remove_action;
	unsigned int index;
};

struct rel_ctx {
	struct kunit *test;
	struct iopf_h *h;
	struct rel_dev devs[REL_MAX_DEVS];
	unsigned int ndevs;
};

/* Requests */

/*
 * A page request tagged @tag (a mode and IOPF_H_TAG_* flags), expecting
 * @expect responses (0 or 1) whose code is in @codes_ok.
 */
static struct iopf_fault rel_fault(struct rel_ctx *ctx, u32 pasid,
				   bool pasid_valid, u32 grpid, bool last,
				   u32 tag, u8 expect, u8 codes_ok)
{
	struct iopf_fault evt = iopf_h_fault(ctx->h, pasid, pasid_valid, grpid,
					     last, tag, expect, codes_ok);

	evt.fault.prm.perm = IOMMU_FAULT_PERM_READ;
	return evt;
}

/* A last request answered by the handler with SUCCESS. */
static struct iopf_fault rel_last(struct rel_ctx *ctx, u32 grpid, u32 tag)
{
	return rel_fault(ctx, 0, false, grpid, true, tag, 1, IOPF_H_OK);
}

/* A partial request: no response. */
static struct iopf_fault rel_partial(struct rel_ctx *ctx, u32 grpid)
{
	return rel_fault(ctx, 0, false, grpid, false, REL_ANSWER, 0, 0);
}

/*
 * Reports the last request of @grpid on @dev: its handler must get a group of
 * @nfaults requests, and answer SUCCESS.
 */
static void rel_expect_group(struct kunit *test, struct rel_ctx *ctx,
			     struct device *dev, u32 grpid,
			     unsigned int nfaults)
{
	struct iopf_fault l = rel_last(ctx, grpid, REL_ANSWER | REL_RECORD);

	iopf_h_report(ctx->h, dev, &l, 0);
	iopf_h_expect_got(test, ctx->h, &l, 1, IOMMU_PAGE_RESP_SUCCESS);
	KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_fault_count, nfaults, "group %u",
			    grpid);
	KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_nfaults, nfaults, "group %u",
			    grpid);
}

/* Kept groups */

static unsigned int rel_nkept(struct rel_dev *rd)
{
	return (rd->rid ? iopf_h_nkept(rd->rid) : 0) +
	       (rd->pasid ? iopf_h_nkept(rd->pasid) : 0);
}

/* Answers the groups kept pending on @rd. Called with its member lock held. */
static unsigned int rel_answer_kept(struct rel_dev *rd)
{
	unsigned int n = 0;

	lockdep_assert_held(&rd->hd->member);
	if (rd->rid)
		n += iopf_h_answer_kept(rd->rid, IOMMU_PAGE_RESP_SUCCESS);
	if (rd->pasid)
		n += iopf_h_answer_kept(rd->pasid, IOMMU_PAGE_RESP_SUCCESS);
	return n;
}

/* Setup */

/* @rd is flushed and removed when the test ends (once registered). */
static void rel_adopt(struct rel_dev *rd)
{
	if (!rd->remove_action) {
		rd->remove_action = true;
		iopf_h_adopt(rd->hd);
	}
}

/* Adds device @i to the queue; it is removed when the test ends. */
static void rel_add(struct rel_ctx *ctx, unsigned int i)
{
	struct rel_dev *rd = &ctx->devs[i];

	mutex_lock(&rd->hd->member);
	KUNIT_EXPECT_EQ(ctx->test, iopf_h_dev_add(rd->hd, ctx->h->queue), 0);
	mutex_unlock(&rd->hd->member);
	rel_adopt(rd);
}

/* Takes device @i off the queue now, as drivers do: flush, then remove. */
static void rel_remove_now(struct rel_ctx *ctx, unsigned int i)
{
	struct rel_dev *rd = &ctx->devs[i];

	mutex_lock(&rd->hd->member);
	iopf_h_dev_remove(rd->hd);
	mutex_unlock(&rd->hd->member);
}

/*
 * Attaches a domain with the harness's handler to the RID and to REL_PASID;
 * the handler checks every group, and keeps groups under the member lock.
 */
static void rel_attach(struct rel_ctx *ctx, unsigned int i)
{
	struct rel_dev *rd = &ctx->devs[i];
	struct iopf_h *h = ctx->h;

	rd->rid = iopf_h_attach(h, h->mock, rd->dev, IOMMU_NO_PASID,
				IOMMU_DOMAIN_UNMANAGED, true, IOPF_H_ANSWER);
	rd->pasid = iopf_h_attach(h, h->mock, rd->dev, REL_PASID,
				  IOMMU_DOMAIN_UNMANAGED, true, IOPF_H_ANSWER);
	rd->rid->check_groups = true;
	rd->pasid->check_groups = true;
	rd->rid->keep_under_member = true;
	rd->pasid->keep_under_member = true;
}

/*
 * A mock IOMMU with @ndevs devices (neither attached nor on the queue yet),
 * a queue, the accounting, and a workqueue for handed-off groups.
 */
static struct rel_ctx *rel_setup(struct kunit *test, unsigned int ndevs)
{
	struct iopf_h_opts opts = {
		.ndevs = ndevs,
		.log_size = 16,
		.max_seq = REL_MAX_SEQ,
		.handoff = true,
	};
	struct rel_ctx *ctx;
	unsigned int i;

	KUNIT_ASSERT_LE(test, ndevs, REL_MAX_DEVS);
	ctx = kunit_kzalloc(test, sizeof(*ctx), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, ctx);
	ctx->test = test;
	ctx->ndevs = ndevs;
	ctx->h = iopf_h_create(test, &opts);
	for (i = 0; i < ndevs; i++) {
		struct rel_dev *rd = &ctx->devs[i];

		rd->ctx = ctx;
		rd->index = i;
		rd->hd = &ctx->h->devs[i];
		rd->dev = rd->hd->dev;
	}

	return ctx;
}

static bool rel_is_rust(void)
{
	return IS_ENABLED(CONFIG_IOMMU_IOPF_RUST);
}

/*
 * The warning the Rust core must print for the bad input a case feeds it,
 * stated in the case's own output:
 *   # iopf_reliability: expect_warning: TEXT
 * `cargo xtask test` checks that the same case's console output has another
 * line holding TEXT (xtask/src/bad_input.rs). Rust core only: io-pgfault.c
 * words its messages differently, or WARNs and the case is skipped.
 */
#define rel_expect_warning(test, fmt, ...)					\
	do {									\
		if (rel_is_rust())						\
			kunit_info(test, "# " SUITE ": expect_warning: " fmt "\n",	\
				   ##__VA_ARGS__);				\
	} while (0)

/* Cases: bad input */

/*
 * A fault whose type is not IOMMU_FAULT_PAGE_REQ.
 *
 * Without a handler both implementations answer nothing and fail with
 * -EINVAL (no response: it is not a page request). With a handler they
 * differ: the Rust core rejects the type first (-EINVAL, no response,
 * nothing held); io-pgfault.c never looks at the type once a handler is
 * found, so it handles the fault as a page request (a last one reaches the
 * handler and is answered, a partial one is held and joins the next last
 * request of its group).
 */
static void iopf_rel_bad_fault_type(struct kunit *test)
{
	struct rel_ctx *ctx = rel_setup(test, 2);
	struct device *d0 = ctx->devs[0].dev, *d1 = ctx->devs[1].dev;
	bool rust = rel_is_rust();
	struct iopf_fault e;
	unsigned int i;
	u32 types[] = { 0, IOMMU_FAULT_PAGE_REQ + 1 };

	rel_attach(ctx, 0);
	rel_add(ctx, 0);
	rel_add(ctx, 1);

	for (i = 0; i < ARRAY_SIZE(types); i++) {
		/* d1 has no handler. */
		e = rel_fault(ctx, 0, false, 1, true, REL_ANSWER, 0, 0);
		e.fault.type = types[i];
		iopf_h_report(ctx->h, d1, &e, -EINVAL);
		rel_expect_warning(test, "iopf: unsupported fault type %u",
				   types[i]);
		ctx->h->scenarios++;

		/* d0 has one: a last request. */
		e = rel_fault(ctx, 0, false, 2, true, REL_ANSWER, !rust, IOPF_H_OK);
		e.fault.type = types[i];
		iopf_h_report(ctx->h, d0, &e, rust ? -EINVAL : 0);
		iopf_h_expect_got(test, ctx->h, &e, !rust, IOMMU_PAGE_RESP_SUCCESS);
		ctx->h->scenarios++;

		/* A partial one, then a real last request of its group. */
		e = rel_fault(ctx, 0, false, 3, false, REL_ANSWER, 0, 0);
		e.fault.type = types[i];
		iopf_h_report(ctx->h, d0, &e, rust ? -EINVAL : 0);
		e = rel_last(ctx, 3, REL_ANSWER | REL_RECORD);
		iopf_h_report(ctx->h, d0, &e, 0);
		iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_SUCCESS);
		KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_fault_count, rust ? 1 : 2,
				    "%s", rust ? "Rust drops a bad partial" :
				    "io-pgfault.c holds a bad partial");
		ctx->h->scenarios++;
	}

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * A report for a device with no IOPF handler and on no queue: answered
 * INVALID, -EINVAL, whether the request is last or partial. Both variants.
 */
static void iopf_rel_report_unattached(struct kunit *test)
{
	struct rel_ctx *ctx = rel_setup(test, 1);
	struct device *dev = ctx->devs[0].dev;
	struct iopf_fault e;

	rel_expect_warning(test, "iopf: page request for a device on no queue");
	e = rel_fault(ctx, 0, false, 1, true, REL_ANSWER, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	e = rel_fault(ctx, 0, false, 1, false, REL_ANSWER, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	e = rel_fault(ctx, REL_PASID, true, 2, true, REL_ANSWER, 1,
		      IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	ctx->h->scenarios = 3;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * Rust only: a report for a device with IOMMU data but in no iommu group (a
 * driver bug). io-pgfault.c dereferences the NULL group to find the handler;
 * the Rust core finds none, answers INVALID and fails with -EINVAL.
 */
static void iopf_rel_report_no_iommu_group(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c dereferences dev->iommu_group");
#else
	struct rel_ctx *ctx = rel_setup(test, 1);
	struct device *dev = ctx->devs[0].dev;
	struct iommu_group *group;
	struct iopf_fault rid, pasid;

	rel_attach(ctx, 0);
	rel_add(ctx, 0);
	rid = rel_fault(ctx, 0, false, 1, true, REL_ANSWER, 1, IOPF_H_INVALID);
	pasid = rel_fault(ctx, REL_PASID, true, 2, true, REL_ANSWER, 1,
			  IOPF_H_INVALID);
	group = dev->iommu_group;
	dev->iommu_group = NULL;
	rel_expect_warning(test,
			   "iopf: no fault handler for pasid 0 group 1, answered invalid");
	rel_expect_warning(test,
			   "iopf: no fault handler for pasid %d group 2, answered invalid",
			   REL_PASID);
	iopf_h_report(ctx->h, dev, &rid, -EINVAL);
	iopf_h_report(ctx->h, dev, &pasid, -EINVAL);
	dev->iommu_group = group;
	iopf_h_expect_got(test, ctx->h, &rid, 1, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_got(test, ctx->h, &pasid, 1, IOMMU_PAGE_RESP_INVALID);
	KUNIT_EXPECT_EQ(test, atomic_read(&ctx->h->delivered), 0);
	ctx->h->scenarios = 2;

	iopf_h_account(ctx->h, SUITE, NULL);
#endif
}

/*
 * A handler is attached but the device has no fault data: never added to a
 * queue, or removed from it. The Rust core answers INVALID and fails with
 * -EINVAL, as without a handler. io-pgfault.c WARN_ON()s (a driver bug by
 * its contract), so the case is skipped there.
 */
static void iopf_rel_report_no_fault_data(struct kunit *test)
{
	struct rel_ctx *ctx;
	struct device *dev;
	struct iopf_fault e;

	if (!rel_is_rust())
		kunit_skip(test,
			   "io-pgfault.c WARN_ON(!iopf_param): a report with a handler but no queue is a driver bug there");

	ctx = rel_setup(test, 1);
	dev = ctx->devs[0].dev;
	rel_attach(ctx, 0);
	rel_expect_warning(test,
			   "iopf: page request for a device without fault data");

	e = rel_fault(ctx, 0, false, 1, true, REL_ANSWER, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	e = rel_fault(ctx, 0, false, 1, false, REL_ANSWER, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	ctx->h->scenarios++;

	/* On the queue it works; removed, it is rejected again. */
	rel_add(ctx, 0);
	e = rel_partial(ctx, 2);
	iopf_h_report(ctx->h, dev, &e, 0);
	e = rel_last(ctx, 2, REL_ANSWER);
	iopf_h_report(ctx->h, dev, &e, 0);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_SUCCESS);
	rel_remove_now(ctx, 0);
	e = rel_fault(ctx, REL_PASID, true, 3, true, REL_ANSWER, 1,
		      IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	e = rel_fault(ctx, 0, false, 3, false, REL_ANSWER, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, dev, &e, -EINVAL);
	iopf_h_expect_got(test, ctx->h, &e, 1, IOMMU_PAGE_RESP_INVALID);
	ctx->h->scenarios++;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * iopf_queue_remove_device() with a queue the device is not on leaves the
 * device alone: its pending group and held partial stay, and the removal from
 * the right queue answers the group INVALID once. io-pgfault.c
 * WARN_ON()s, so the case is skipped there.
 */
static void iopf_rel_remove_wrong_queue(struct kunit *test)
{
	struct iopf_fault kept, p;
	struct iopf_queue *other;
	struct rel_ctx *ctx;
	struct rel_dev *rd;

	if (!rel_is_rust())
		kunit_skip(test,
			   "io-pgfault.c WARN_ON(fault_param->queue != queue): a driver bug there");

	ctx = rel_setup(test, 1);
	rd = &ctx->devs[0];
	other = iopf_h_queue_alloc(test, "iopf-rel-other");
	rel_attach(ctx, 0);
	rel_add(ctx, 0);

	mutex_lock(&rd->hd->member);
	kept = rel_fault(ctx, 0, false, 1, true, REL_KEEP, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, rd->dev, &kept, 0);
	p = rel_partial(ctx, 2);
	iopf_h_report(ctx->h, rd->dev, &p, 0);
	iopf_queue_remove_device(other, rd->dev);
	rel_expect_warning(test,
			   "iopf: removing a device that is not on this queue");
	KUNIT_EXPECT_EQ(test, iopf_h_responses(ctx->h), 0);
	KUNIT_EXPECT_EQ(test, rel_nkept(rd), 1);
	mutex_unlock(&rd->hd->member);

	rel_expect_group(test, ctx, rd->dev, 2, 2);

	rel_remove_now(ctx, 0);
	iopf_h_expect_got(test, ctx->h, &kept, 1, IOMMU_PAGE_RESP_INVALID);
	ctx->h->scenarios = 1;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * iopf_queue_flush_dev() for a device that is on no queue (removed, or
 * never added): -ENODEV. io-pgfault.c WARN_ON()s, so skipped there.
 */
static void iopf_rel_flush_after_remove(struct kunit *test)
{
	struct rel_ctx *ctx;

	if (!rel_is_rust())
		kunit_skip(test,
			   "io-pgfault.c WARN_ON(!iopf_param): flushing a removed device is a driver bug there");

	ctx = rel_setup(test, 2);
	rel_add(ctx, 0);
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(ctx->devs[0].dev), 0);
	rel_remove_now(ctx, 0);
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(ctx->devs[0].dev), -ENODEV);
	rel_expect_warning(test, "iopf: flushing a device that is on no queue");
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(ctx->devs[1].dev), -ENODEV);
	ctx->h->scenarios = 2;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * A NULL queue: iopf_queue_discard_partial() fails with -EINVAL and
 * iopf_queue_free() does nothing, on both variants; the real queue's held
 * partials are untouched.
 */
static void iopf_rel_null_queue(struct kunit *test)
{
	struct rel_ctx *ctx = rel_setup(test, 1);
	struct device *dev = ctx->devs[0].dev;
	struct iopf_fault p;

	rel_attach(ctx, 0);
	rel_add(ctx, 0);
	p = rel_partial(ctx, 4);
	iopf_h_report(ctx->h, dev, &p, 0);

	KUNIT_EXPECT_EQ(test, iopf_queue_discard_partial(NULL), -EINVAL);
	rel_expect_warning(test,
			   "iopf: iopf_queue_discard_partial() called with a NULL queue");
	iopf_queue_free(NULL);

	rel_expect_group(test, ctx, dev, 4, 2);
	ctx->h->scenarios = 2;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * NULL where io-pgfault.c dereferences it: a NULL queue to add_device or
 * remove_device, a NULL event or device. The Rust core fails with -EINVAL
 * (or ignores the call) and the device stays as it was. Skipped on C, which
 * crashes on each of them.
 */
static void iopf_rel_null_arguments(struct kunit *test)
{
	struct rel_ctx *ctx;
	struct iopf_fault p, l;
	struct device *dev;

	if (!rel_is_rust())
		kunit_skip(test,
			   "io-pgfault.c dereferences a NULL queue, device or event (oops)");

	ctx = rel_setup(test, 1);
	dev = ctx->devs[0].dev;
	rel_attach(ctx, 0);

	KUNIT_EXPECT_EQ(test, iopf_queue_add_device(NULL, dev), -EINVAL);
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(NULL), -EINVAL);
	rel_add(ctx, 0);
	p = rel_partial(ctx, 5);
	iopf_h_report(ctx->h, dev, &p, 0);
	iopf_queue_remove_device(NULL, dev);
	iopf_queue_remove_device(ctx->h->queue, NULL);
	KUNIT_EXPECT_EQ(test, iommu_report_device_fault(dev, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, iommu_report_device_fault(NULL, &p), -EINVAL);
	iopf_group_response(NULL, IOMMU_PAGE_RESP_SUCCESS);
	iopf_group_dequeue(NULL);
	iopf_free_group(NULL);
	rel_expect_warning(test,
			   "iopf: iopf_queue_add_device() called with a NULL queue");
	rel_expect_warning(test,
			   "iopf: iopf_queue_flush_dev() called with a NULL device");
	rel_expect_warning(test,
			   "iopf: iopf_queue_remove_device() called with a NULL queue");
	rel_expect_warning(test,
			   "iopf: iopf_queue_remove_device() called with a NULL device");
	rel_expect_warning(test,
			   "iopf: iommu_report_device_fault() called with a NULL event");
	rel_expect_warning(test,
			   "iopf: iommu_report_device_fault() called with a NULL device");
	rel_expect_warning(test,
			   "iopf: iopf_group_response() called with a NULL group");
	rel_expect_warning(test,
			   "iopf: iopf_group_dequeue() called with a NULL group");
	rel_expect_warning(test,
			   "iopf: iopf_free_group() called with a NULL group");

	/* Still on its queue, with its partial. */
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(dev), 0);
	l = rel_last(ctx, 5, REL_ANSWER | REL_RECORD);
	iopf_h_report(ctx->h, dev, &l, 0);
	KUNIT_EXPECT_EQ(test, ctx->h->rec_fault_count, 2);
	ctx->h->scenarios = 8;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * iopf_queue_add_device() of a device already on a queue (the same or
 * another): -EBUSY, and the device's pending group and held partial are
 * untouched. Both variants.
 */
static void iopf_rel_add_device_twice(struct kunit *test)
{
	struct rel_ctx *ctx = rel_setup(test, 1);
	struct rel_dev *rd = &ctx->devs[0];
	struct iopf_fault kept, p;
	struct iopf_queue *other;

	other = iopf_h_queue_alloc(test, "iopf-rel-other");
	rel_attach(ctx, 0);
	rel_add(ctx, 0);

	mutex_lock(&rd->hd->member);
	kept = rel_fault(ctx, 0, false, 1, true, REL_KEEP, 1, IOPF_H_INVALID);
	iopf_h_report(ctx->h, rd->dev, &kept, 0);
	mutex_unlock(&rd->hd->member);
	p = rel_partial(ctx, 2);
	iopf_h_report(ctx->h, rd->dev, &p, 0);

	KUNIT_EXPECT_EQ(test, iopf_queue_add_device(ctx->h->queue, rd->dev),
			-EBUSY);
	KUNIT_EXPECT_EQ(test, iopf_queue_add_device(other, rd->dev), -EBUSY);
	rel_expect_warning(test,
			   "iopf: adding a device that is already on a queue");
	KUNIT_EXPECT_EQ(test, iopf_h_responses(ctx->h), 0);

	rel_expect_group(test, ctx, rd->dev, 2, 2);

	rel_remove_now(ctx, 0);
	iopf_h_expect_got(test, ctx->h, &kept, 1, IOMMU_PAGE_RESP_INVALID);
	ctx->h->scenarios = 2;

	iopf_h_account(ctx->h, SUITE, NULL);
}

/* Cases: a flood of partial requests */

/*
 * 1,000,000 by default; iopf_kunit.flood=N on the command line changes it.
 * `cargo xtask test` floods 100,000 on the debug kernels (KASAN and
 * kmemleak make each request cost tens of microseconds under TCG) and the
 * default on the KCSAN kernels.
 */
static unsigned int rel_flood = 1000000;
module_param_named(flood, rel_flood, uint, 0444);
MODULE_PARM_DESC(flood, "partial requests of iopf_rel_partial_flood");
/* PCIe page request group indexes are 9 bits. */
#define REL_PRG_INDEXES		512U
#define REL_FLOOD_SAMPLE	4096U

static unsigned long rel_slab_pages(void)
{
	return global_node_page_state_pages(NR_SLAB_UNRECLAIMABLE_B);
}

/*
 * rel_flood (1,000,000) requests without the Last Page flag, spread over
 * every group index, that no last request ever completes. The Rust core
 * holds at most CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL of them per device
 * (dropping the oldest group, whose later partials it drops too), so its
 * memory stays bounded; io-pgfault.c holds every one of them until the
 * device is removed. The last requests sent afterwards show it: for Rust,
 * one per group index, refused INVALID if its group lost requests, or
 * delivered with all of its partials; for C, one group index (walking all the held
 * partials for each of 512 last requests takes too long under emulation),
 * which must hold all of its own. The peak growth of unreclaimable slab memory over the
 * flood is printed (on a KASAN kernel it includes the quarantine of freed
 * objects, and with kmemleak its metadata).
 */
static void iopf_rel_partial_flood(struct kunit *test)
{
	struct rel_ctx *ctx = rel_setup(test, 1);
	struct device *dev = ctx->devs[0].dev;
	unsigned long base, peak, pages;
	unsigned int i, errors = 0, probed, refused = 0;
	struct iopf_fault evt, l;
	char extra[160];
	u64 held, ms;
	ktime_t start;

	rel_attach(ctx, 0);
	rel_add(ctx, 0);

	evt = rel_fault(ctx, 0, false, 0, false, REL_ANSWER, 0, 0);
	evt.fault.prm.private_data[0] = 0;	/* not tracked one by one */
	base = rel_slab_pages();
	peak = base;
	start = ktime_get();
	for (i = 0; i < rel_flood; i++) {
		evt.fault.prm.grpid = i % REL_PRG_INDEXES;
		evt.fault.prm.addr = (u64)(i + 1) << PAGE_SHIFT;
		if (iopf_h_report(ctx->h, dev, &evt, IOPF_H_ANY_RET))
			errors++;
		if (i % REL_FLOOD_SAMPLE == 0) {
			pages = rel_slab_pages();
			peak = max(peak, pages);
			cond_resched();
		}
	}
	peak = max(peak, rel_slab_pages());
	ms = ktime_ms_delta(ktime_get(), start);
	KUNIT_EXPECT_EQ(test, errors, 0);
	ctx->h->scenarios = 1;
	/* Once for the flood; each dropped group is traced. */
	rel_expect_warning(test,
			   "iopf: too many partial page requests, dropping the oldest groups");

	probed = rel_is_rust() ? REL_PRG_INDEXES : 1;
	for (i = 0; i < probed; i++) {
#ifdef CONFIG_IOMMU_IOPF_RUST
		/*
		 * The groups that lost requests to the bound are refused
		 * INVALID; the others come whole, with every partial of theirs
		 * that the flood sent.
		 */
		l = rel_fault(ctx, 0, false, i, true,
			      REL_ANSWER | REL_SUM | REL_RECORD, 1,
			      IOPF_H_OK | IOPF_H_INVALID);
		ctx->h->rec_last = 0;
		iopf_h_report(ctx->h, dev, &l, 0);
		KUNIT_EXPECT_EQ(test, iopf_h_got(ctx->h, &l), 1);
		if (iopf_h_code(ctx->h, &l) == IOMMU_PAGE_RESP_INVALID) {
			KUNIT_EXPECT_NE(test, ctx->h->rec_last, iopf_h_seq(&l.fault));
			refused++;
			continue;
		}
		KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_fault_count - 1,
				    (size_t)DIV_ROUND_UP(rel_flood - i,
							 REL_PRG_INDEXES),
				    "partials of group %u", i);
#else
		l = rel_last(ctx, i, REL_ANSWER | REL_SUM);
		iopf_h_report(ctx->h, dev, &l, 0);
		iopf_h_expect_got(test, ctx->h, &l, 1, IOMMU_PAGE_RESP_SUCCESS);
#endif
	}
	held = atomic64_read(&ctx->h->partials_delivered);
#ifdef CONFIG_IOMMU_IOPF_RUST
	KUNIT_EXPECT_LE_MSG(test, held, (u64)CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL,
			    "partials held by one device");
	KUNIT_EXPECT_GT(test, refused, 0);
	/* The refusals forgot the losses: a complete group goes through. */
	l = rel_partial(ctx, 7);
	iopf_h_report(ctx->h, dev, &l, 0);
	rel_expect_group(test, ctx, dev, 7, 2);
#else
	/* Group index 0 got one request in every REL_PRG_INDEXES. */
	KUNIT_EXPECT_EQ_MSG(test, held,
			    (u64)DIV_ROUND_UP(rel_flood, REL_PRG_INDEXES),
			    "io-pgfault.c holds every partial");
#endif
	rel_remove_now(ctx, 0);

	snprintf(extra, sizeof(extra),
		 "flood=%u peak_slab_kb=%lu held=%llu probed_groups=%u refused_groups=%u flood_ms=%llu",
		 rel_flood, (peak - base) * (PAGE_SIZE / 1024), held, probed,
		 refused, ms);
	iopf_h_account(ctx->h, SUITE, extra);
}

/* Cases: allocation failures */

/*
 * Fails the Nth slab allocation of the current task (fault injection's
 * per-task fail-nth, as /proc/self/task/T/fail-nth sets it). GFP_KERNEL
 * allocations are only failed with failslab's ignore-gfp-wait off, and an
 * injected failure dumps a stack unless verbose is 0: both are set for the
 * duration of the case through the data of their debugfs files, as no other
 * interface reaches them from inside the kernel.
 */
struct rel_failslab {
	bool *ignore_gfp_wait;
	unsigned long *verbose;
	bool saved_ignore;
	unsigned long saved_verbose;
	/* For rel_fail_all_begin(): failslab's task filter. */
	unsigned long *probability, *interval;
	atomic_t *times;
	bool *task_filter;
	unsigned long saved_probability, saved_interval;
	int saved_times;
	bool saved_task_filter;
};

static void *rel_debugfs_data(struct dentry *dir, const char *name)
{
	struct dentry *d = debugfs_lookup(name, dir);
	void *data = NULL;

	if (!IS_ERR_OR_NULL(d)) {
		data = d_inode(d)->i_private;
		dput(d);
	}
	return data;
}

static void rel_failslab_restore(void *data)
{
	struct rel_failslab *fs = data;

	*fs->ignore_gfp_wait = fs->saved_ignore;
	*fs->verbose = fs->saved_verbose;
	*fs->probability = fs->saved_probability;
	*fs->interval = fs->saved_interval;
	atomic_set(fs->times, fs->saved_times);
	*fs->task_filter = fs->saved_task_filter;
#ifdef CONFIG_FAULT_INJECTION
	current->make_it_fail = 0;
#endif
}

/*
 * Arms failslab for fail-nth, or skips the case if the kernel lacks it. With
 * @reclaiming, every allocation may be failed; without, only those that do
 * not reclaim (failslab's ignore-gfp-wait). The case's end restores it.
 */
static struct rel_failslab *rel_failslab_arm(struct kunit *test,
					     bool reclaiming)
{
#if IS_ENABLED(CONFIG_FAILSLAB) && IS_ENABLED(CONFIG_FAULT_INJECTION_DEBUG_FS)
	struct rel_failslab *fs;
	struct dentry *dir;

	fs = kunit_kzalloc(test, sizeof(*fs), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, fs);
	dir = debugfs_lookup("failslab", NULL);
	if (IS_ERR_OR_NULL(dir))
		kunit_skip(test, "no failslab in debugfs");
	fs->ignore_gfp_wait = rel_debugfs_data(dir, "ignore-gfp-wait");
	fs->verbose = rel_debugfs_data(dir, "verbose");
	fs->probability = rel_debugfs_data(dir, "probability");
	fs->interval = rel_debugfs_data(dir, "interval");
	fs->times = rel_debugfs_data(dir, "times");
	fs->task_filter = rel_debugfs_data(dir, "task-filter");
	dput(dir);
	if (!fs->ignore_gfp_wait || !fs->verbose || !fs->probability ||
	    !fs->interval || !fs->times || !fs->task_filter)
		kunit_skip(test, "failslab's debugfs attributes not found");
	fs->saved_ignore = *fs->ignore_gfp_wait;
	fs->saved_verbose = *fs->verbose;
	fs->saved_probability = *fs->probability;
	fs->saved_interval = *fs->interval;
	fs->saved_times = atomic_read(fs->times);
	fs->saved_task_filter = *fs->task_filter;
	*fs->ignore_gfp_wait = !reclaiming;
	*fs->verbose = 0;
	KUNIT_ASSERT_EQ(test,
			kunit_add_action_or_reset(test, rel_failslab_restore, fs),
			0);
	return fs;
#else
	kunit_skip(test, "needs CONFIG_FAILSLAB and CONFIG_FAULT_INJECTION_DEBUG_FS");
	return NULL;
#endif
}

#ifdef CONFIG_FAULT_INJECTION
/*
 * Fails every slab allocation of this task, and of no other, from here to
 * rel_fail_all_end(): failslab's task filter, with probability 100.
 */
static void rel_fail_all_begin(struct rel_failslab *fs)
{
	*fs->task_filter = true;
	*fs->interval = 1;
	atomic_set(fs->times, -1);
	current->make_it_fail = 1;
	WRITE_ONCE(*fs->probability, 100);
}

static void rel_fail_all_end(struct rel_failslab *fs)
{
	WRITE_ONCE(*fs->probability, 0);
	current->make_it_fail = 0;
}

static void rel_fail_nth_begin(unsigned int n)
{
	WRITE_ONCE(current->fail_nth, n);
}

/* Whether the Nth allocation happened (and failed); disarms fail-nth. */
static bool rel_fail_nth_end(void)
{
	bool hit = !READ_ONCE(current->fail_nth);

	WRITE_ONCE(current->fail_nth, 0);
	return hit;
}
#else
static void rel_fail_all_begin(struct rel_failslab *fs)
{
}

static void rel_fail_all_end(struct rel_failslab *fs)
{
}

static void rel_fail_nth_begin(unsigned int n)
{
}

static bool rel_fail_nth_end(void)
{
	return false;
}
#endif

#define REL_FAIL_NTH_MAX	256

/*
 * The report path, with its Nth allocation failed, for every N until a run
 * has no allocation left to fail. Each run reports two partial requests of
 * group 1, one of group 2, then the last requests of groups 1 and 2:
 * - a partial whose allocation fails is not held (-ENOMEM), the others are;
 *   the Rust core allocates again with reclaim when its copy of a partial
 *   cannot be allocated without (see iopf_rel_partial_alloc_fails), so one
 *   failure never loses a partial there; but a partial whose group cannot be
 *   indexed (the index grows without reclaim) is dropped, and its group's
 *   last request is answered INVALID;
 * - a last request whose group cannot be allocated is answered FAILURE and
 *   its group's held partials are freed (report returns 0); otherwise its
 *   handler gets exactly the partials that were held, and answers SUCCESS;
 * - afterwards nothing of either group is held: new last requests of both
 *   come alone.
 * An injected failure may also hit an allocation outside the IOPF code
 * (kmemleak's metadata, which then uses its pool): then nothing fails.
 */
static void iopf_rel_fail_nth_report(struct kunit *test)
{
	/* Rust: a group whose first partial could not be indexed is refused. */
	const u8 refused = rel_is_rust() ? IOPF_H_INVALID : 0;
	unsigned int n, i, enomem = 0, aborted = 0, indexless = 0;
	struct iopf_fault p[3], l[2], again;
	struct rel_ctx *ctx;
	struct device *dev;
	int ret[3];
	char extra[128];
	bool hit = true;

	rel_failslab_arm(test, true);
	ctx = rel_setup(test, 1);
	dev = ctx->devs[0].dev;
	rel_attach(ctx, 0);
	rel_add(ctx, 0);

	for (n = 1; hit && n <= REL_FAIL_NTH_MAX; n++) {
		p[0] = rel_partial(ctx, 1);
		p[1] = rel_partial(ctx, 1);
		p[2] = rel_partial(ctx, 2);
		l[0] = rel_fault(ctx, 0, false, 1, true, REL_ANSWER | REL_RECORD,
				 1, IOPF_H_OK | IOPF_H_FAILURE | refused);
		l[1] = rel_fault(ctx, 0, false, 2, true, REL_ANSWER, 1,
				 IOPF_H_OK | IOPF_H_FAILURE | refused);
		ctx->h->rec_last = 0;
		atomic_set(&ctx->h->delivered, 0);

		rel_fail_nth_begin(n);
		for (i = 0; i < 3; i++)
			ret[i] = iopf_h_report(ctx->h, dev, &p[i],
					       IOPF_H_ANY_RET);
		iopf_h_report(ctx->h, dev, &l[0], 0);
		iopf_h_report(ctx->h, dev, &l[1], 0);
		hit = rel_fail_nth_end();
		ctx->h->scenarios++;
		ctx->h->injected += hit;

		for (i = 0; i < 3; i++) {
			KUNIT_EXPECT_TRUE_MSG(test, !ret[i] || ret[i] == -ENOMEM,
					      "n=%u partial %u: %d", n, i, ret[i]);
			enomem += ret[i] == -ENOMEM;
		}
		/* Group 1: delivered with its held partials, or aborted. */
		if (ctx->h->rec_last == iopf_h_seq(&l[0].fault)) {
			u64 want[3];
			unsigned int k = 0;

			for (i = 0; i < 2; i++)
				if (!ret[i])
					want[k++] = iopf_h_seq(&p[i].fault);
			want[k++] = iopf_h_seq(&l[0].fault);
			KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_nfaults, k, "n=%u", n);
			for (i = 0; i < min(k, ctx->h->rec_nfaults); i++)
				KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_seqs[i], want[i],
						    "n=%u: fault %u of group 1", n, i);
			iopf_h_expect_got(test, ctx->h, &l[0], 1, IOMMU_PAGE_RESP_SUCCESS);
		} else if (iopf_h_code(ctx->h, &l[0]) == IOMMU_PAGE_RESP_INVALID) {
			/* Rust: its first partial could not be indexed. */
			KUNIT_EXPECT_TRUE_MSG(test, refused, "n=%u", n);
			indexless++;
		} else {
			iopf_h_expect_got(test, ctx->h, &l[0], 1, IOMMU_PAGE_RESP_FAILURE);
			aborted++;
		}
		if (iopf_h_code(ctx->h, &l[1]) == IOMMU_PAGE_RESP_FAILURE)
			aborted++;
		if (iopf_h_code(ctx->h, &l[1]) == IOMMU_PAGE_RESP_INVALID)
			indexless++;
		KUNIT_EXPECT_EQ(test, iopf_h_got(ctx->h, &l[1]), 1);
		KUNIT_EXPECT_EQ_MSG(test, atomic_read(&ctx->h->delivered),
				    2 - (iopf_h_code(ctx->h, &l[0]) != 0) -
				    (iopf_h_code(ctx->h, &l[1]) != 0), "n=%u", n);

		/* Nothing is left held. */
		for (i = 1; i <= 2; i++) {
			again = rel_last(ctx, i, REL_ANSWER | REL_RECORD);
			iopf_h_report(ctx->h, dev, &again, 0);
			KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_nfaults, 1,
					    "n=%u: group %u kept partials", n, i);
			iopf_h_expect_got(test, ctx->h, &again, 1,
					  IOMMU_PAGE_RESP_SUCCESS);
		}
	}
	KUNIT_EXPECT_FALSE_MSG(test, hit, "more than %u allocations",
			       REL_FAIL_NTH_MAX);
	/*
	 * Every allocation site was reached: both outcomes were seen (the Rust
	 * core retries a partial's copy, so no single failure makes -ENOMEM).
	 */
	if (rel_is_rust())
		KUNIT_EXPECT_EQ(test, enomem, 0);
	else
		KUNIT_EXPECT_GT(test, enomem, 0);
	KUNIT_EXPECT_GT(test, aborted, 0);

	/* Nothing pending either: the removal answers nothing. */
	n = iopf_h_responses(ctx->h);
	rel_remove_now(ctx, 0);
	KUNIT_EXPECT_EQ(test, iopf_h_responses(ctx->h), n);

	snprintf(extra, sizeof(extra),
		 "partial_enomem=%u groups_aborted=%u groups_indexless=%u",
		 enomem, aborted, indexless);
	iopf_h_account(ctx->h, SUITE, extra);
}

/*
 * A partial request whose copy cannot be allocated. With the first
 * allocation of the report failed, io-pgfault.c returns -ENOMEM and holds
 * nothing; the Rust core, whose first try is without reclaim (under the
 * partials' spinlock), allocates again with reclaim and holds it. With every
 * allocation of the reporting task failed, neither holds it: -ENOMEM, and its
 * group's last request comes without it, answered by its handler.
 */
static void iopf_rel_partial_alloc_fails(struct kunit *test)
{
	struct rel_failslab *fs = rel_failslab_arm(test, true);
	const bool rust = rel_is_rust();
	struct iopf_fault p;
	struct rel_ctx *ctx;
	struct device *dev;

	ctx = rel_setup(test, 1);
	dev = ctx->devs[0].dev;
	rel_attach(ctx, 0);
	rel_add(ctx, 0);

	/* With memory: this leaves the Rust core's index allocated. */
	p = rel_partial(ctx, 1);
	iopf_h_report(ctx->h, dev, &p, 0);
	rel_expect_group(test, ctx, dev, 1, 2);

	/* The first allocation fails: C loses the partial, Rust retries. */
	p = rel_partial(ctx, 2);
	rel_fail_nth_begin(1);
	iopf_h_report(ctx->h, dev, &p, rust ? 0 : -ENOMEM);
	KUNIT_EXPECT_TRUE(test, rel_fail_nth_end());
	rel_expect_group(test, ctx, dev, 2, rust ? 2 : 1);

	/* Every allocation fails: both lose it. */
	p = rel_partial(ctx, 3);
	rel_fail_all_begin(fs);
	iopf_h_report(ctx->h, dev, &p, -ENOMEM);
	rel_fail_all_end(fs);
	rel_expect_group(test, ctx, dev, 3, 1);

	ctx->h->scenarios = 3;
	ctx->h->injected = 2;
	iopf_h_account(ctx->h, SUITE, NULL);
}

/*
 * Rust only: the index of a device's held partials is allocated under the
 * spinlock of its partials, so it is allocated without reclaim, after the
 * copy of the request (and, with kmemleak, the copy's metadata). With only
 * the allocations that do not reclaim failed (failslab's ignore-gfp-wait),
 * the Nth for N = 1, 2, ... on a device's first partial, each on a device
 * just added: a failed copy is allocated again with reclaim and the group
 * goes through whole, until N reaches the index. Then the partial is
 * dropped, and its group's last request refused INVALID, not handed over
 * incomplete. With memory, the group goes through.
 */
static void iopf_rel_index_alloc_no_reclaim(struct kunit *test)
{
#ifndef CONFIG_IOMMU_IOPF_RUST
	kunit_skip(test, "io-pgfault.c holds partials on a list: no index to allocate");
#else
	bool hit = true, refused = false;
	struct iopf_fault p, l;
	struct rel_ctx *ctx;
	struct device *dev;
	unsigned int n;

	rel_failslab_arm(test, false);
	ctx = rel_setup(test, 1);
	dev = ctx->devs[0].dev;
	rel_attach(ctx, 0);

	for (n = 1; hit && !refused && n <= REL_FAIL_NTH_MAX; n++) {
		rel_add(ctx, 0);
		p = rel_partial(ctx, 1);
		rel_fail_nth_begin(n);
		iopf_h_report(ctx->h, dev, &p, 0);
		hit = rel_fail_nth_end();
		ctx->h->injected += hit;
		ctx->h->scenarios++;
		l = rel_fault(ctx, 0, false, 1, true, REL_ANSWER | REL_RECORD, 1,
			      IOPF_H_OK | IOPF_H_INVALID);
		ctx->h->rec_last = 0;
		iopf_h_report(ctx->h, dev, &l, 0);
		KUNIT_EXPECT_EQ(test, iopf_h_got(ctx->h, &l), 1);
		refused = iopf_h_code(ctx->h, &l) == IOMMU_PAGE_RESP_INVALID;
		if (refused)
			KUNIT_EXPECT_NE_MSG(test, ctx->h->rec_last,
					    iopf_h_seq(&l.fault), "n=%u", n);
		else
			KUNIT_EXPECT_EQ_MSG(test, ctx->h->rec_fault_count, 2,
					    "n=%u", n);
		rel_remove_now(ctx, 0);
	}
	KUNIT_EXPECT_TRUE_MSG(test, refused,
			      "no allocation without reclaim failed the index");

	rel_add(ctx, 0);
	p = rel_partial(ctx, 1);
	iopf_h_report(ctx->h, dev, &p, 0);
	rel_expect_group(test, ctx, dev, 1, 2);
	ctx->h->scenarios++;

	iopf_h_account(ctx->h, SUITE, NULL);
#endif
}

/*
 * iopf_queue_add_device() with its Nth allocation failed: -ENOMEM and the
 * device is not on the queue (it can be added afterwards and works), or it
 * succeeded because the failure hit an allocation outside the IOPF code.
 */
static void iopf_rel_fail_nth_add_device(struct kunit *test)
{
	unsigned int n, enomem = 0;
	struct rel_ctx *ctx;
	struct rel_dev *rd;
	struct iopf_fault l;
	char extra[32];
	bool hit = true;
	int ret;

	rel_failslab_arm(test, true);
	ctx = rel_setup(test, 1);
	rd = &ctx->devs[0];
	rel_attach(ctx, 0);

	for (n = 1; hit && n <= REL_FAIL_NTH_MAX; n++) {
		mutex_lock(&rd->hd->member);
		rel_fail_nth_begin(n);
		ret = iopf_queue_add_device(ctx->h->queue, rd->dev);
		hit = rel_fail_nth_end();
		mutex_unlock(&rd->hd->member);
		ctx->h->scenarios++;
		ctx->h->injected += hit;
		KUNIT_EXPECT_TRUE_MSG(test, !ret || ret == -ENOMEM,
				      "n=%u: %d", n, ret);
		if (ret == -ENOMEM) {
			enomem++;
			rel_add(ctx, 0);
		} else {
			rd->hd->queue = ctx->h->queue;
			rel_adopt(rd);
		}
		l = rel_last(ctx, n, REL_ANSWER);
		iopf_h_report(ctx->h, rd->dev, &l, 0);
		iopf_h_expect_got(test, ctx->h, &l, 1, IOMMU_PAGE_RESP_SUCCESS);
		rel_remove_now(ctx, 0);
	}
	KUNIT_EXPECT_FALSE(test, hit);
	KUNIT_EXPECT_GT(test, enomem, 0);

	snprintf(extra, sizeof(extra), "add_enomem=%u", enomem);
	iopf_h_account(ctx->h, SUITE, extra);
}

/* Cases: concurrency */

#define REL_STRESS_DEVS		4
#define REL_STRESS_GROUPS	1000
#define REL_STRESS_GRPIDS	64

struct rel_stress {
	struct rel_ctx *ctx;
	atomic_t stop;
	unsigned int flushes, discards, cycles, late_answers, errors;
};

/* The mode of group @g of device @i: every mode, in a scattered order. */
static enum iopf_h_mode rel_stress_mode(unsigned int i, unsigned int g)
{
	return (g * 7 + i * 3 + g / 5) % IOPF_H_NR_MODES;
}

static u8 rel_stress_codes(enum iopf_h_mode mode)
{
	switch (mode) {
	case IOPF_H_KEEP:
		return IOPF_H_OK | IOPF_H_INVALID;
	case IOPF_H_FAIL:
		return IOPF_H_FAILURE;
	default:
		return IOPF_H_OK;
	}
}

/*
 * One device's reporter: groups of 0 to 3 partial requests and a last one,
 * on the RID and on REL_PASID, under the device's member lock (which the
 * cycler takes to remove and re-add the device, as a driver stops its page
 * request queue first).
 */
static int rel_reporter_fn(void *data)
{
	struct rel_dev *rd = data;
	struct rel_ctx *ctx = rd->ctx;
	unsigned int g, k;

	for (g = 0; g < REL_STRESS_GROUPS; g++) {
		enum iopf_h_mode mode = rel_stress_mode(rd->index, g);
		u32 grpid = g % REL_STRESS_GRPIDS;
		bool pv = g & 1;
		u32 pasid = pv ? REL_PASID : 0;
		struct iopf_fault evt;

		mutex_lock(&rd->hd->member);
		for (k = 0; k < g % 4; k++) {
			evt = rel_fault(ctx, pasid, pv, grpid, false,
					IOPF_H_MODE(mode), 0, 0);
			if (iommu_report_device_fault(rd->dev, &evt))
				rd->hd->errors++;
		}
		evt = rel_fault(ctx, pasid, pv, grpid, true, IOPF_H_MODE(mode), 1,
				rel_stress_codes(mode));
		if (iommu_report_device_fault(rd->dev, &evt))
			rd->hd->errors++;
		mutex_unlock(&rd->hd->member);
		cond_resched();
	}
	return 0;
}

static int rel_flusher_fn(void *data)
{
	struct rel_stress *s = data;
	struct rel_ctx *ctx = s->ctx;
	unsigned int i = 0;

	while (!atomic_read(&s->stop)) {
		struct rel_dev *rd = &ctx->devs[i++ % ctx->ndevs];

		mutex_lock(&rd->hd->member);
		if (iopf_queue_flush_dev(rd->dev))
			s->errors++;
		mutex_unlock(&rd->hd->member);
		s->flushes++;
		usleep_range(200, 400);
	}
	return 0;
}

static int rel_discarder_fn(void *data)
{
	struct rel_stress *s = data;

	while (!atomic_read(&s->stop)) {
		if (iopf_queue_discard_partial(s->ctx->h->queue))
			s->errors++;
		s->discards++;
		usleep_range(100, 300);
	}
	return 0;
}

/* Answers the groups kept pending, from time to time. */
static int rel_answerer_fn(void *data)
{
	struct rel_stress *s = data;
	struct rel_ctx *ctx = s->ctx;
	unsigned int i = 0;

	while (!atomic_read(&s->stop)) {
		struct rel_dev *rd = &ctx->devs[i++ % ctx->ndevs];

		mutex_lock(&rd->hd->member);
		s->late_answers += rel_answer_kept(rd);
		mutex_unlock(&rd->hd->member);
		usleep_range(500, 1000);
	}
	return 0;
}

/* Removes a device (answering its pending groups INVALID) and adds it back. */
static int rel_cycler_fn(void *data)
{
	struct rel_stress *s = data;
	struct rel_ctx *ctx = s->ctx;

	while (!atomic_read(&s->stop)) {
		struct rel_dev *rd = &ctx->devs[s->cycles++ % ctx->ndevs];

		mutex_lock(&rd->hd->member);
		iopf_h_dev_remove(rd->hd);
		if (iopf_h_dev_add(rd->hd, ctx->h->queue))
			s->errors++;
		mutex_unlock(&rd->hd->member);
		usleep_range(1000, 2000);
	}
	return 0;
}

/*
 * Reporters on several devices of one queue, while other threads flush the
 * devices, discard partials, answer kept groups and remove and re-add
 * devices, and work items answer deferred and handed-off groups. At the end
 * every last request got exactly one response with a code its handling
 * allows, nothing is held (new last requests of every group index come
 * alone) and nothing is pending (removing the devices answers nothing).
 */
static void iopf_rel_stress(struct kunit *test)
{
	struct rel_ctx *ctx = rel_setup(test, REL_STRESS_DEVS);
	struct iopf_h_threads *helpers, *reporters;
	unsigned int i, g, errors = 0;
	unsigned long before;
	struct rel_stress *s;
	struct iopf_fault l;
	char extra[160];
	u64 ms;
	ktime_t start;
	int (*const helper_fn[])(void *data) = {
		rel_flusher_fn, rel_discarder_fn, rel_cycler_fn, rel_answerer_fn,
	};

	s = kunit_kzalloc(test, sizeof(*s), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, s);
	helpers = kunit_kzalloc(test, sizeof(*helpers), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, helpers);
	reporters = kunit_kzalloc(test, sizeof(*reporters), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, reporters);
	s->ctx = ctx;

	for (i = 0; i < REL_STRESS_DEVS; i++)
		rel_attach(ctx, i);
	for (i = 0; i < REL_STRESS_DEVS; i++)
		rel_add(ctx, i);

	start = ktime_get();
	for (i = 0; i < ARRAY_SIZE(helper_fn); i++)
		if (!iopf_h_thread_start(helpers, helper_fn[i], s,
					 "iopf_rel_helper", i))
			break;
	for (i = 0; i < REL_STRESS_DEVS; i++)
		if (!iopf_h_thread_start(reporters, rel_reporter_fn,
					 &ctx->devs[i], "iopf_rel_rep", i))
			break;
	/* No assertion may end the test while the threads run. */
	iopf_h_threads_wait(reporters);
	atomic_set(&s->stop, 1);
	iopf_h_threads_wait(helpers);
	ms = ktime_ms_delta(ktime_get(), start);
	KUNIT_ASSERT_EQ(test, reporters->started, REL_STRESS_DEVS);
	KUNIT_ASSERT_EQ(test, helpers->started, ARRAY_SIZE(helper_fn));

	/* Drain: handed-off groups, deferred work, kept groups. */
	flush_workqueue(ctx->h->wq);
	for (i = 0; i < REL_STRESS_DEVS; i++) {
		struct rel_dev *rd = &ctx->devs[i];

		mutex_lock(&rd->hd->member);
		KUNIT_EXPECT_TRUE(test, rd->hd->queue);
		KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(rd->dev), 0);
		s->late_answers += rel_answer_kept(rd);
		mutex_unlock(&rd->hd->member);
		errors += rd->hd->errors;
	}
	ctx->h->faults = atomic_read(&ctx->h->next_seq);
	ctx->h->scenarios = REL_STRESS_DEVS * REL_STRESS_GROUPS;
	KUNIT_EXPECT_EQ(test, errors, 0);
	KUNIT_EXPECT_EQ(test, s->errors, 0);

	/* Nothing held: a last request of every group index comes alone. */
	for (i = 0; i < REL_STRESS_DEVS; i++) {
		for (g = 0; g < REL_STRESS_GRPIDS; g++) {
			l = rel_last(ctx, g, REL_ANSWER | REL_SUM);
			iopf_h_report(ctx->h, ctx->devs[i].dev, &l, 0);
		}
	}
	KUNIT_EXPECT_EQ_MSG(test, atomic64_read(&ctx->h->partials_delivered), 0,
			    "partials left held after the stress");

	/* Nothing pending: the removals answer nothing. */
	before = iopf_h_responses(ctx->h);
	for (i = 0; i < REL_STRESS_DEVS; i++)
		rel_remove_now(ctx, i);
	KUNIT_EXPECT_EQ_MSG(test, iopf_h_responses(ctx->h), before,
			    "groups left pending after the stress");

	snprintf(extra, sizeof(extra),
		 "flushes=%u discards=%u cycles=%u late_answers=%u stress_ms=%llu",
		 s->flushes, s->discards, s->cycles, s->late_answers, ms);
	iopf_h_account(ctx->h, SUITE, extra);
}

/* Suite */

static struct kunit_case iopf_rel_cases[] = {
	KUNIT_CASE(iopf_rel_bad_fault_type),
	KUNIT_CASE(iopf_rel_report_unattached),
	KUNIT_CASE(iopf_rel_report_no_fault_data),
	KUNIT_CASE(iopf_rel_report_no_iommu_group),
	KUNIT_CASE(iopf_rel_remove_wrong_queue),
	KUNIT_CASE(iopf_rel_flush_after_remove),
	KUNIT_CASE(iopf_rel_null_queue),
	KUNIT_CASE(iopf_rel_null_arguments),
	KUNIT_CASE(iopf_rel_add_device_twice),
	KUNIT_CASE_SLOW(iopf_rel_partial_flood),
	KUNIT_CASE(iopf_rel_fail_nth_report),
	KUNIT_CASE(iopf_rel_partial_alloc_fails),
	KUNIT_CASE(iopf_rel_index_alloc_no_reclaim),
	KUNIT_CASE(iopf_rel_fail_nth_add_device),
	KUNIT_CASE_SLOW(iopf_rel_stress),
	{}
};

static struct kunit_suite iopf_rel_suite = {
	.name = "iopf_reliability",
	.test_cases = iopf_rel_cases,
};

kunit_test_suite(iopf_rel_suite);
