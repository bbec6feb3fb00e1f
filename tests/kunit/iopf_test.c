// SPDX-License-Identifier: GPL-2.0
/*
 * Black-box KUnit suite for the IOMMU I/O page fault framework.
 *
 * Runs unchanged on the upstream C implementation (drivers/iommu/io-pgfault.c)
 * and on its Rust replacement (CONFIG_IOMMU_IOPF_RUST): it only uses the
 * public API of <linux/iommu.h> and the IOMMU core, through the shared test
 * harness (iopf_harness.h). struct iommu_fault_param and struct iopf_queue
 * are never dereferenced; of struct iopf_group only the public fields
 * (last_fault, faults, fault_count, attach_handle, work, node) are read.
 *
 * Faults are reported on devices of a mock IOMMU (iopf_mock_iommu.c) whose
 * page_response op records every response. Each case checks that every
 * last-page request got exactly one response, with the right code, PASID and
 * group index, and that nothing is left pending at the end. The handler
 * lookups and the groupings are scripts of one table each (struct
 * iopf_script), run as the parameters of one case per family.
 *
 * None of the cases reaches a WARN_ON() of the C implementation (report with
 * a fault handler but no IOPF queue, flush or remove of a device that is not
 * on the queue): the test runner fails on any "WARNING:".
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/iommu.h>
#include <linux/slab.h>

#include "iopf_harness.h"

#define IOPF_TEST_LOG_SIZE		512
#define IOPF_TEST_MAX_DEVS		4
#define IOPF_TEST_MAX_KEPT		16

/* A test's mock IOMMU, its devices and queue, and the harness around them. */
struct iopf_test_env {
	struct iopf_mock_log *log;
	struct iopf_h *h;
	struct iopf_mock_iommu *mock;
	struct iopf_queue *queue;
	struct device *dev[IOPF_TEST_MAX_DEVS];
};

/*
 * A page request of group @grpid. Every fault gets a fresh page address,
 * which identifies it in the response log and in the groups.
 */
static struct iopf_fault make_fault(struct iopf_test_env *env, u32 pasid,
				    u32 grpid, bool last, bool pasid_valid)
{
	return iopf_h_fault(env->h, pasid, pasid_valid, grpid, last, 0,
			    IOPF_H_UNCHECKED, 0);
}

/* Setup */

/*
 * A mock IOMMU with @opts' flags and devices, and an IOPF queue. The
 * devices are not on the queue yet: attach first, then add them, so that
 * the end-of-test teardown removes them from the queue before detaching.
 */
static struct iopf_test_env *iopf_test_setup_opts(struct kunit *test,
						  struct iopf_h_opts *opts)
{
	struct iopf_test_env *env = test->priv;
	unsigned int i;

	KUNIT_ASSERT_LE(test, opts->ndevs, IOPF_TEST_MAX_DEVS);
	opts->log = env->log;
	env->h = iopf_h_create(test, opts);
	env->mock = env->h->mock;
	env->queue = env->h->queue;
	for (i = 0; i < opts->ndevs; i++)
		env->dev[i] = env->h->devs[i].dev;

	return env;
}

static struct iopf_test_env *iopf_test_setup(struct kunit *test,
					     unsigned int flags,
					     unsigned int ndevs)
{
	struct iopf_h_opts opts = { .mock_flags = flags, .ndevs = ndevs };

	return iopf_test_setup_opts(test, &opts);
}

/*
 * Attach a new domain of @type to @pasid of @dev (IOMMU_NO_PASID: the RID),
 * with a handle whose handler acts as @mode and keeps at most
 * IOPF_TEST_MAX_KEPT groups. Without @handler, the domain has no
 * iopf_handler.
 */
static struct iopf_h_handle *
iopf_test_attach(struct kunit *test, struct iopf_mock_iommu *mock,
		 struct device *dev, ioasid_t pasid, unsigned int type,
		 bool handler, enum iopf_h_mode mode)
{
	struct iopf_test_env *env = test->priv;
	struct iopf_h_handle *h;

	h = iopf_h_attach(env->h, mock, dev, pasid, type, handler, mode);
	h->max_kept = IOPF_TEST_MAX_KEPT;
	return h;
}

static struct iopf_h_handle *
iopf_test_attach_rid(struct kunit *test, struct iopf_test_env *env,
		     struct device *dev, enum iopf_h_mode mode)
{
	return iopf_test_attach(test, env->mock, dev, IOMMU_NO_PASID,
				IOMMU_DOMAIN_UNMANAGED, true, mode);
}

static struct iopf_h_handle *
iopf_test_attach_pasid(struct kunit *test, struct iopf_test_env *env,
		       struct device *dev, ioasid_t pasid,
		       enum iopf_h_mode mode)
{
	return iopf_test_attach(test, env->mock, dev, pasid,
				IOMMU_DOMAIN_UNMANAGED, true, mode);
}

static struct iopf_h_member *iopf_test_add_device(struct iopf_test_env *env,
						  struct iopf_queue *queue,
						  struct device *dev)
{
	return iopf_h_add(iopf_h_dev_of(env->h, dev), queue);
}

/* Remove @m's device and check that it had no pending group left. */
static void expect_idle_at_removal(struct kunit *test,
				   struct iopf_test_env *env,
				   struct iopf_h_member *m)
{
	unsigned int before = iopf_mock_log_count(env->log);

	iopf_h_remove(m);
	KUNIT_EXPECT_EQ_MSG(test, iopf_mock_log_count(env->log), before,
			    "groups still pending when the device was removed");
}

/* Scripts: the groupings and the handler lookups */

#define IOPF_SCRIPT_MAX_ATTACH		3
#define IOPF_SCRIPT_MAX_FAULTS		10

/* A domain attached before the devices join the queue. */
struct iopf_script_attach {
	u8 dev;
	ioasid_t pasid;
	unsigned int type;
	bool handler;
};

/*
 * A page request and what becomes of it: what the report returns, the
 * attachment whose handler gets its group (-1: none), that group (a mask of
 * the indexes of its requests in the script, oldest first, this one last),
 * the code the handler answers with, and the code of the response it gets
 * (-1: none).
 */
struct iopf_script_fault {
	u8 dev;
	u32 pasid;
	bool pasid_valid;
	u32 grpid;
	bool last;
	int ret;
	s8 to;
	u16 group;
	u8 code;
	s8 resp;
};

struct iopf_script {
	const char *name;
	unsigned int mock_flags;
	unsigned int ndevs;
	unsigned int nattach;
	struct iopf_script_attach attach[IOPF_SCRIPT_MAX_ATTACH];
	unsigned int nfaults;
	struct iopf_script_fault faults[IOPF_SCRIPT_MAX_FAULTS];
};

/* A partial request of @dev, held. */
#define SCRIPT_PARTIAL(d, p, pv, g)					\
	{ .dev = d, .pasid = p, .pasid_valid = pv, .grpid = g, .to = -1,	\
	  .resp = -1 }
/* A last request of @dev delivered to attachment @t with @grp, answered @c. */
#define SCRIPT_LAST(d, p, pv, g, t, grp, c)				\
	{ .dev = d, .pasid = p, .pasid_valid = pv, .grpid = g,		\
	  .last = true, .to = t, .group = grp, .code = c, .resp = c }
/* A last request of @dev that finds no handler: INVALID, -EINVAL. */
#define SCRIPT_REFUSED(d, p, pv, g)					\
	{ .dev = d, .pasid = p, .pasid_valid = pv, .grpid = g,		\
	  .last = true, .ret = -EINVAL, .to = -1,			\
	  .resp = IOMMU_PAGE_RESP_INVALID }

#define SCRIPT_SUCCESS			IOMMU_PAGE_RESP_SUCCESS
#define SCRIPT_RID(d, t, hdl)						\
	{ .dev = d, .pasid = IOMMU_NO_PASID, .type = t, .handler = hdl }
#define SCRIPT_PASID(d, p, hdl)						\
	{ .dev = d, .pasid = p, .type = IOMMU_DOMAIN_UNMANAGED,		\
	  .handler = hdl }

static const struct iopf_script iopf_test_groupings[] = {
	{
		.name = "single_page_inline",
		.ndevs = 1,
		.nattach = 1,
		.attach = { SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true) },
		.nfaults = 2,
		.faults = {
			SCRIPT_LAST(0, 0, false, 1, 0, BIT(0), SCRIPT_SUCCESS),
			/* The code the handler responds with reaches the driver as is. */
			SCRIPT_LAST(0, 0, false, 2, 0, BIT(1),
				    IOMMU_PAGE_RESP_INVALID),
		},
	},
	{
		/*
		 * Partials are held without a response and without a handler
		 * call; the last page completes the group, partials oldest first,
		 * and takes them: the next last page of the group comes alone.
		 */
		.name = "multi_page_group",
		.ndevs = 1,
		.nattach = 1,
		.attach = { SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true) },
		.nfaults = 5,
		.faults = {
			SCRIPT_PARTIAL(0, 0, false, 3),
			SCRIPT_PARTIAL(0, 0, false, 3),
			SCRIPT_PARTIAL(0, 0, false, 3),
			SCRIPT_LAST(0, 0, false, 3, 0, GENMASK(3, 0),
				    SCRIPT_SUCCESS),
			SCRIPT_LAST(0, 0, false, 3, 0, BIT(4), SCRIPT_SUCCESS),
		},
	},
	{
		.name = "interleaved_groups",
		.ndevs = 1,
		.nattach = 1,
		.attach = { SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true) },
		.nfaults = 8,
		.faults = {
			SCRIPT_PARTIAL(0, 0, false, 1),
			SCRIPT_PARTIAL(0, 0, false, 2),
			SCRIPT_PARTIAL(0, 0, false, 1),
			SCRIPT_PARTIAL(0, 0, false, 2),
			SCRIPT_PARTIAL(0, 0, false, 2),
			SCRIPT_PARTIAL(0, 0, false, 1),
			SCRIPT_LAST(0, 0, false, 2, 0,
				    BIT(1) | BIT(3) | BIT(4) | BIT(6),
				    SCRIPT_SUCCESS),
			SCRIPT_LAST(0, 0, false, 1, 0,
				    BIT(0) | BIT(2) | BIT(5) | BIT(7),
				    SCRIPT_SUCCESS),
		},
	},
	{
		/* Partials are held per device: another device's last page does not take them. */
		.name = "partials_per_device",
		.ndevs = 2,
		.nattach = 2,
		.attach = {
			SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true),
			SCRIPT_RID(1, IOMMU_DOMAIN_UNMANAGED, true),
		},
		.nfaults = 3,
		.faults = {
			SCRIPT_PARTIAL(0, 0, false, 1),
			SCRIPT_LAST(1, 0, false, 1, 1, BIT(1), SCRIPT_SUCCESS),
			SCRIPT_LAST(0, 0, false, 1, 0, BIT(0) | BIT(2),
				    SCRIPT_SUCCESS),
		},
	},
	{
		/*
		 * Partials join the last page of the same group index on the
		 * device, whatever their PASID: the PRG index identifies the
		 * group (it is per function in PCIe), and the handler is the one
		 * of the last page.
		 */
		.name = "partials_match_grpid_only",
		.ndevs = 1,
		.nattach = 2,
		.attach = {
			SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true),
			SCRIPT_PASID(0, 5, true),
		},
		.nfaults = 2,
		.faults = {
			SCRIPT_PARTIAL(0, 5, true, 7),
			SCRIPT_LAST(0, 0, false, 7, 0, BIT(0) | BIT(1),
				    SCRIPT_SUCCESS),
		},
	},
};

static const struct iopf_script iopf_test_lookups[] = {
	{
		/* PASID_VALID: the PASID's handle; otherwise the RID's, whatever prm.pasid. */
		.name = "pasid_and_rid",
		.ndevs = 1,
		.nattach = 2,
		.attach = {
			SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true),
			SCRIPT_PASID(0, 7, true),
		},
		.nfaults = 5,
		.faults = {
			SCRIPT_LAST(0, 7, true, 1, 1, BIT(0), SCRIPT_SUCCESS),
			SCRIPT_LAST(0, 0, false, 2, 0, BIT(1), SCRIPT_SUCCESS),
			/* Without PASID_VALID the pasid field does not select a handle. */
			SCRIPT_LAST(0, 7, false, 3, 0, BIT(2), SCRIPT_SUCCESS),
			/* A multi-page group on a PASID. */
			SCRIPT_PARTIAL(0, 7, true, 4),
			SCRIPT_LAST(0, 7, true, 4, 1, BIT(3) | BIT(4),
				    SCRIPT_SUCCESS),
		},
	},
	{
		/*
		 * With a user-managed PASID table, a PASID without a handle of
		 * its own goes to the NESTED domain's handle on the RID; a PASID
		 * with a handle keeps it.
		 */
		.name = "user_pasid_table",
		.mock_flags = IOPF_MOCK_USER_PASID_TABLE,
		.ndevs = 1,
		.nattach = 2,
		.attach = {
			SCRIPT_RID(0, IOMMU_DOMAIN_NESTED, true),
			SCRIPT_PASID(0, 7, true),
		},
		.nfaults = 5,
		.faults = {
			SCRIPT_LAST(0, 9, true, 1, 0, BIT(0), SCRIPT_SUCCESS),
			SCRIPT_LAST(0, 7, true, 2, 1, BIT(1), SCRIPT_SUCCESS),
			SCRIPT_LAST(0, 0, false, 3, 0, BIT(2), SCRIPT_SUCCESS),
			SCRIPT_PARTIAL(0, 9, true, 4),
			SCRIPT_LAST(0, 9, true, 4, 0, BIT(3) | BIT(4),
				    SCRIPT_SUCCESS),
		},
	},
	{
		/* The user_pasid_table fallback only takes a NESTED domain on the RID. */
		.name = "user_pasid_table_needs_nested",
		.mock_flags = IOPF_MOCK_USER_PASID_TABLE,
		.ndevs = 1,
		.nattach = 1,
		.attach = { SCRIPT_RID(0, IOMMU_DOMAIN_UNMANAGED, true) },
		.nfaults = 2,
		.faults = {
			SCRIPT_REFUSED(0, 9, true, 1),
			SCRIPT_LAST(0, 0, false, 2, 0, BIT(1), SCRIPT_SUCCESS),
		},
	},
	{
		/*
		 * Without user_pasid_table, a PASID without a handle has no
		 * handler; the RID lookup takes a handle of any domain type.
		 */
		.name = "no_user_pasid_table",
		.ndevs = 1,
		.nattach = 1,
		.attach = { SCRIPT_RID(0, IOMMU_DOMAIN_NESTED, true) },
		.nfaults = 2,
		.faults = {
			SCRIPT_REFUSED(0, 9, true, 1),
			SCRIPT_LAST(0, 0, false, 2, 0, BIT(1), SCRIPT_SUCCESS),
		},
	},
	{
		/*
		 * No handler: a handle whose domain has no iopf_handler (no
		 * fallback to the RID even with user_pasid_table), or no handle
		 * at all. The request is answered INVALID and the report fails
		 * with -EINVAL. d0: a NESTED RID handle with a handler, a PASID 7
		 * handle without; d1: a RID handle without a handler; d2: nothing
		 * attached.
		 */
		.name = "no_handler",
		.mock_flags = IOPF_MOCK_USER_PASID_TABLE,
		.ndevs = 3,
		.nattach = 3,
		.attach = {
			SCRIPT_RID(0, IOMMU_DOMAIN_NESTED, true),
			SCRIPT_PASID(0, 7, false),
			SCRIPT_RID(1, IOMMU_DOMAIN_UNMANAGED, false),
		},
		.nfaults = 4,
		.faults = {
			SCRIPT_REFUSED(0, 7, true, 1),
			SCRIPT_REFUSED(1, 0, false, 2),
			SCRIPT_REFUSED(2, 0, false, 3),
			SCRIPT_REFUSED(2, 9, true, 4),
		},
	},
};

static void iopf_script_desc(const struct iopf_script *s, char *desc)
{
	strscpy(desc, s->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(iopf_test_groupings, iopf_test_groupings, iopf_script_desc);
KUNIT_ARRAY_PARAM(iopf_test_lookups, iopf_test_lookups, iopf_script_desc);

/*
 * Runs a script: attaches its domains, adds its devices to the queue, then
 * reports its requests one by one. After each report, every attachment has
 * had exactly the groups the script gave it so far, each made of the
 * script's requests in order, and the mock has the script's responses so
 * far, in order. At the end every device is removed with nothing pending.
 */
static void iopf_test_run_script(struct kunit *test)
{
	const struct iopf_script *s = test->param_value;
	struct iopf_h_handle *hh[IOPF_SCRIPT_MAX_ATTACH];
	unsigned int delivered[IOPF_SCRIPT_MAX_ATTACH] = {};
	struct iopf_fault evt[IOPF_SCRIPT_MAX_FAULTS];
	struct iopf_h_member *m[IOPF_TEST_MAX_DEVS];
	unsigned int i, j, n, nresp = 0;
	struct iopf_test_env *env;

	env = iopf_test_setup(test, s->mock_flags, s->ndevs);
	for (i = 0; i < s->nattach; i++) {
		const struct iopf_script_attach *a = &s->attach[i];

		hh[i] = iopf_test_attach(test, env->mock, env->dev[a->dev],
					 a->pasid, a->type, a->handler,
					 IOPF_H_ANSWER);
	}
	for (i = 0; i < s->ndevs; i++)
		m[i] = iopf_test_add_device(env, env->queue, env->dev[i]);

	for (i = 0; i < s->nfaults; i++) {
		const struct iopf_script_fault *f = &s->faults[i];
		const struct iopf_fault *group[IOPF_SCRIPT_MAX_FAULTS];
		struct device *dev = env->dev[f->dev];

		evt[i] = iopf_h_fault(env->h, f->pasid, f->pasid_valid,
				      f->grpid, f->last,
				      IOPF_H_TAG_CODE(f->code),
				      IOPF_H_UNCHECKED, 0);
		iopf_h_report(env->h, dev, &evt[i], f->ret);

		if (f->to >= 0) {
			for (j = 0, n = 0; j <= i; j++)
				if (f->group & BIT(j))
					group[n++] = &evt[j];
			iopf_h_expect_group(test, hh[f->to], delivered[f->to],
					    group, n);
			delivered[f->to]++;
		}
		for (j = 0; j < s->nattach; j++)
			KUNIT_EXPECT_EQ_MSG(test, iopf_h_deliveries(hh[j]),
					    delivered[j],
					    "groups of attachment %u after request %u",
					    j, i);
		if (f->resp >= 0) {
			iopf_h_expect_log_count(test, env->log, nresp + 1);
			iopf_h_expect_resp(test, env->log, nresp, dev, &evt[i],
					   f->resp);
			nresp++;
		} else {
			iopf_h_expect_log_count(test, env->log, nresp);
		}
	}

	for (i = s->ndevs; i-- > 0;)
		expect_idle_at_removal(test, env, m[i]);
}

/* Cases: grouping */

static void iopf_test_grouping(struct kunit *test)
{
	iopf_test_run_script(test);
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
	struct iopf_h_handle *h;
	struct iopf_h_member *m;
	unsigned int i;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_ANSWER);
	m = iopf_test_add_device(env, env->queue, dev);

	/* Group 1 is the oldest; group 2 fills the device up to the bound. */
	old = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, dev, &old, 0);
	first2 = make_fault(env, 0, 2, false, false);
	iopf_h_report(env->h, dev, &first2, 0);
	for (i = 2; i < max; i++) {
		p = make_fault(env, 0, 2, false, false);
		KUNIT_ASSERT_EQ(test, iommu_report_device_fault(dev, &p), 0);
	}
	/* One past the bound: group 1 goes, and so does its next partial. */
	young = make_fault(env, 0, 3, false, false);
	iopf_h_report(env->h, dev, &young, 0);
	late = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, dev, &late, 0);

	l1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l1, 0);
	l2 = make_fault(env, 0, 2, true, false);
	iopf_h_report(env->h, dev, &l2, 0);
	l3 = make_fault(env, 0, 3, true, false);
	iopf_h_report(env->h, dev, &l3, 0);

	KUNIT_ASSERT_EQ(test, iopf_h_deliveries(h), 2);
	KUNIT_EXPECT_EQ(test, h->deliveries[0].fault_count, (size_t)max);
	KUNIT_EXPECT_EQ(test, h->deliveries[0].nfaults, max);
	KUNIT_EXPECT_TRUE(test, iopf_h_fault_eq(&h->deliveries[0].faults[0],
						&first2.fault));
	KUNIT_EXPECT_TRUE(test, iopf_h_fault_eq(&h->deliveries[0].last,
						&l2.fault));
	IOPF_H_EXPECT_GROUP(test, h, 1, &young, &l3);
	iopf_h_expect_log_count(test, env->log, 3);
	iopf_h_expect_resp(test, env->log, 0, dev, &l1, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp(test, env->log, 1, dev, &l2, IOMMU_PAGE_RESP_SUCCESS);
	iopf_h_expect_resp(test, env->log, 2, dev, &l3, IOMMU_PAGE_RESP_SUCCESS);

	/* Its last page refused, group index 1 starts afresh. */
	again = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, dev, &again, 0);
	l1b = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l1b, 0);
	IOPF_H_EXPECT_GROUP(test, h, 2, &again, &l1b);
	iopf_h_expect_resp(test, env->log, 3, dev, &l1b, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
#endif
}

/* Cases: handler lookup */

static void iopf_test_lookup(struct kunit *test)
{
	iopf_test_run_script(test);
}

/*
 * Without a handler even a partial is answered INVALID (-EINVAL), and it is
 * not held: a later last page of its group comes alone.
 */
static void iopf_test_no_handler_partial(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_h_member *m;
	struct iopf_h_handle *h;
	struct iopf_fault p, l;

	m = iopf_test_add_device(env, env->queue, dev);

	p = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, dev, &p, -EINVAL);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &p, IOMMU_PAGE_RESP_INVALID);

	/* Attaching under a device already on the queue is fine for the core. */
	h = iopf_test_attach_rid(test, env, dev, IOPF_H_ANSWER);
	l = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l, 0);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h), 1);
	IOPF_H_EXPECT_GROUP(test, h, 0, &l);
	iopf_h_expect_log_count(test, env->log, 2);
	iopf_h_expect_resp(test, env->log, 1, dev, &l, IOMMU_PAGE_RESP_SUCCESS);

	/* Detach before the device leaves the queue (teardown is LIFO). */
	iopf_mock_detach(test, h->attach);
	expect_idle_at_removal(test, env, m);
}

/* A fault that is not a page request gets no response. */
static void iopf_test_not_page_request(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 2);
	struct device *d0 = env->dev[0], *d1 = env->dev[1];
	struct iopf_h_member *m0, *m1;
	struct iopf_fault e1, e2, e3, e4;

	/* d0: nothing attached. d1: RID handle without a handler. */
	iopf_test_attach(test, env->mock, d1, IOMMU_NO_PASID,
			 IOMMU_DOMAIN_UNMANAGED, false, IOPF_H_ANSWER);
	m0 = iopf_test_add_device(env, env->queue, d0);
	m1 = iopf_test_add_device(env, env->queue, d1);

	e1 = make_fault(env, 0, 1, true, false);
	e1.fault.type = 0;
	iopf_h_report(env->h, d0, &e1, -EINVAL);
	e2 = make_fault(env, 0, 2, true, false);
	e2.fault.type = IOMMU_FAULT_PAGE_REQ + 1;
	iopf_h_report(env->h, d0, &e2, -EINVAL);
	e3 = make_fault(env, 3, 3, false, true);
	e3.fault.type = 0;
	iopf_h_report(env->h, d1, &e3, -EINVAL);
	iopf_h_expect_log_count(test, env->log, 0);

	/* The same fault as a page request is answered. */
	e4 = make_fault(env, 0, 4, true, false);
	iopf_h_report(env->h, d0, &e4, -EINVAL);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, d0, &e4, IOMMU_PAGE_RESP_INVALID);

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
	struct iopf_h_member *m;
	struct iopf_h_handle *h;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_FAIL);
	m = iopf_test_add_device(env, env->queue, dev);

	p1 = make_fault(env, 0, 4, false, false);
	iopf_h_report(env->h, dev, &p1, 0);
	p2 = make_fault(env, 0, 4, false, false);
	iopf_h_report(env->h, dev, &p2, 0);
	l = make_fault(env, 0, 4, true, false);
	iopf_h_report(env->h, dev, &l, 0);

	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h), 1);
	IOPF_H_EXPECT_GROUP(test, h, 0, &p1, &p2, &l);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_FAILURE);

	h->mode = IOPF_H_ANSWER;
	again = make_fault(env, 0, 4, true, false);
	iopf_h_report(env->h, dev, &again, 0);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h), 2);
	IOPF_H_EXPECT_GROUP(test, h, 1, &again);
	iopf_h_expect_log_count(test, env->log, 2);
	iopf_h_expect_resp(test, env->log, 1, dev, &again, IOMMU_PAGE_RESP_SUCCESS);

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
	struct iopf_h_handle *hr, *hp;
	struct iopf_fault la, lb, pc, lc;
	struct iopf_h_member *m;
	struct iopf_group *group;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_H_KEEP);
	hr->dequeue = true;
	hp = iopf_test_attach_pasid(test, env, dev, 3, IOPF_H_KEEP);
	m = iopf_test_add_device(env, env->queue, dev);

	/* Dequeued and answered right away: a normal response. */
	la = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &la, 0);
	KUNIT_ASSERT_EQ(test, hr->nkept, 1);
	group = iopf_h_kept_pop(hr);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(group);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &la, IOMMU_PAGE_RESP_SUCCESS);

	/* One dequeued group (RID), one pending group (PASID 3). */
	lb = make_fault(env, 0, 2, true, false);
	iopf_h_report(env->h, dev, &lb, 0);
	pc = make_fault(env, 3, 3, false, true);
	iopf_h_report(env->h, dev, &pc, 0);
	lc = make_fault(env, 3, 3, true, true);
	iopf_h_report(env->h, dev, &lc, 0);
	KUNIT_ASSERT_EQ(test, hr->nkept, 1);
	KUNIT_ASSERT_EQ(test, hp->nkept, 1);
	IOPF_H_EXPECT_GROUP(test, hp, 0, &pc, &lc);
	iopf_h_expect_log_count(test, env->log, 1);

	/* The removal answers the pending group only (and gives hp's up). */
	iopf_h_remove(m);
	iopf_h_expect_log_count(test, env->log, 2);
	iopf_h_expect_resp(test, env->log, 1, dev, &lc, IOMMU_PAGE_RESP_INVALID);

	group = iopf_h_kept_pop(hr);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(group);
	iopf_h_expect_log_count(test, env->log, 3);
	iopf_h_expect_resp(test, env->log, 2, dev, &lb, IOMMU_PAGE_RESP_SUCCESS);
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
	struct iopf_h_handle *h;
	struct iopf_h_member *m;
	struct iopf_group *group;
	struct iopf_fault l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_KEEP);
	m = iopf_test_add_device(env, env->queue, dev);

	l = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l, 0);
	KUNIT_ASSERT_EQ(test, h->nkept, 1);
	group = iopf_h_kept_pop(h);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_group_response(group, IOMMU_PAGE_RESP_FAILURE);
	iopf_free_group(group);

	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_SUCCESS);
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
	struct iopf_h_handle *h;
	struct iopf_h_member *m;
	struct iopf_fault p, l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_KEEP);
	h->dequeue = true;
	m = iopf_test_add_device(env, env->queue, dev);

	p = make_fault(env, 0, 4, false, false);
	iopf_h_report(env->h, dev, &p, 0);
	l = make_fault(env, 0, 4, true, false);
	iopf_h_report(env->h, dev, &l, 0);
	KUNIT_ASSERT_EQ(test, h->nkept, 1);
	iopf_free_group(iopf_h_kept_pop(h));

	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_INVALID);
	expect_idle_at_removal(test, env, m);
#endif
}

/* iopf_queue_flush_dev() waits for the work queued with iopf_queue_work(). */
static void iopf_test_flush_dev_waits(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault l1, p2, l2, l3;
	struct iopf_h_member *m;
	struct iopf_h_handle *h;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_DEFER);
	h->work_delay_ms = 100;
	m = iopf_test_add_device(env, env->queue, dev);

	l1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l1, 0);
	p2 = make_fault(env, 0, 2, false, false);
	iopf_h_report(env->h, dev, &p2, 0);
	l2 = make_fault(env, 0, 2, true, false);
	iopf_h_report(env->h, dev, &l2, 0);
	l3 = make_fault(env, 0, 3, true, false);
	iopf_h_report(env->h, dev, &l3, 0);

	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(dev), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done), 3);
	iopf_h_expect_log_count(test, env->log, 3);
	iopf_h_expect_resp_once(test, env->log, dev, &l1, IOMMU_PAGE_RESP_SUCCESS);
	iopf_h_expect_resp_once(test, env->log, dev, &l2, IOMMU_PAGE_RESP_SUCCESS);
	iopf_h_expect_resp_once(test, env->log, dev, &l3, IOMMU_PAGE_RESP_SUCCESS);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h), 3);
	IOPF_H_EXPECT_GROUP(test, h, 1, &p2, &l2);

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
	struct iopf_h_handle *h0, *h1, *h2, *h3;
	struct iopf_h_member *m0, *m1, *m2, *m3;
	struct iopf_queue *other;

	other = iopf_h_queue_alloc(test, "iopf-kunit-other");
	h0 = iopf_test_attach_rid(test, env, d0, IOPF_H_ANSWER);
	h1 = iopf_test_attach_rid(test, env, d1, IOPF_H_ANSWER);
	h2 = iopf_test_attach_rid(test, env, d2, IOPF_H_ANSWER);
	h3 = iopf_test_attach_rid(test, env, d3, IOPF_H_KEEP);
	m0 = iopf_test_add_device(env, env->queue, d0);
	m1 = iopf_test_add_device(env, env->queue, d1);
	m2 = iopf_test_add_device(env, other, d2);
	m3 = iopf_test_add_device(env, env->queue, d3);

	p0a = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, d0, &p0a, 0);
	p0b = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, d0, &p0b, 0);
	p1 = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, d1, &p1, 0);
	p2 = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, d2, &p2, 0);
	lk = make_fault(env, 0, 5, true, false);
	iopf_h_report(env->h, d3, &lk, 0);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h3), 1);

	KUNIT_EXPECT_EQ(test, iopf_queue_discard_partial(env->queue), 0);
	KUNIT_EXPECT_EQ(test, iopf_queue_discard_partial(NULL), -EINVAL);
	iopf_h_expect_log_count(test, env->log, 0);

	l0 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, d0, &l0, 0);
	l1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, d1, &l1, 0);
	l2 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, d2, &l2, 0);
	IOPF_H_EXPECT_GROUP(test, h0, 0, &l0);
	IOPF_H_EXPECT_GROUP(test, h1, 0, &l1);
	IOPF_H_EXPECT_GROUP(test, h2, 0, &p2, &l2);

	/* Partials held after the discard are grouped again. */
	p0c = make_fault(env, 0, 2, false, false);
	iopf_h_report(env->h, d0, &p0c, 0);
	l0c = make_fault(env, 0, 2, true, false);
	iopf_h_report(env->h, d0, &l0c, 0);
	IOPF_H_EXPECT_GROUP(test, h0, 1, &p0c, &l0c);

	iopf_h_expect_log_count(test, env->log, 4);
	iopf_h_expect_resp(test, env->log, 0, d0, &l0, IOMMU_PAGE_RESP_SUCCESS);
	iopf_h_expect_resp(test, env->log, 1, d1, &l1, IOMMU_PAGE_RESP_SUCCESS);
	iopf_h_expect_resp(test, env->log, 2, d2, &l2, IOMMU_PAGE_RESP_SUCCESS);
	iopf_h_expect_resp(test, env->log, 3, d0, &l0c, IOMMU_PAGE_RESP_SUCCESS);

	/* The kept group is still pending: the removal answers it. */
	iopf_h_remove(m3);
	iopf_h_expect_log_count(test, env->log, 5);
	iopf_h_expect_resp(test, env->log, 4, d3, &lk, IOMMU_PAGE_RESP_INVALID);

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
	struct iopf_h_handle *hr, *hp, *h2;
	struct iopf_h_member *m, *m2;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_H_KEEP);
	hp = iopf_test_attach_pasid(test, env, dev, 5, IOPF_H_KEEP);
	m = iopf_test_add_device(env, env->queue, dev);

	p1 = make_fault(env, 0, 1, false, false);
	iopf_h_report(env->h, dev, &p1, 0);
	l1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l1, 0);
	l2 = make_fault(env, 5, 2, true, true);
	iopf_h_report(env->h, dev, &l2, 0);
	l3 = make_fault(env, 0, 3, true, false);
	iopf_h_report(env->h, dev, &l3, 0);
	p4 = make_fault(env, 0, 4, false, false);
	iopf_h_report(env->h, dev, &p4, 0);
	KUNIT_EXPECT_EQ(test, hr->nkept, 2);
	KUNIT_EXPECT_EQ(test, hp->nkept, 1);
	iopf_h_expect_log_count(test, env->log, 0);

	iopf_h_remove(m);
	iopf_h_expect_log_count(test, env->log, 3);
	iopf_h_expect_resp_once(test, env->log, dev, &l1, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp_once(test, env->log, dev, &l2, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp_once(test, env->log, dev, &l3, IOMMU_PAGE_RESP_INVALID);

	iopf_mock_detach(test, hp->attach);
	iopf_mock_detach(test, hr->attach);
	l4 = make_fault(env, 0, 4, true, false);
	iopf_h_report(env->h, dev, &l4, -EINVAL);
	iopf_h_expect_log_count(test, env->log, 4);
	iopf_h_expect_resp(test, env->log, 3, dev, &l4, IOMMU_PAGE_RESP_INVALID);

	h2 = iopf_test_attach_rid(test, env, dev, IOPF_H_ANSWER);
	m2 = iopf_test_add_device(env, env->queue, dev);
	l5 = make_fault(env, 0, 4, true, false);
	iopf_h_report(env->h, dev, &l5, 0);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h2), 1);
	IOPF_H_EXPECT_GROUP(test, h2, 0, &l5);
	iopf_h_expect_log_count(test, env->log, 5);
	iopf_h_expect_resp(test, env->log, 4, dev, &l5, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m2);
}

/* Reports once the device is off its queue and its domains detached. */
static void iopf_test_report_after_remove(struct kunit *test)
{
	struct iopf_test_env *env = iopf_test_setup(test, 0, 1);
	struct device *dev = env->dev[0];
	struct iopf_fault l1, l2, p3, l4;
	struct iopf_h_handle *hr, *hp;
	struct iopf_h_member *m;

	hr = iopf_test_attach_rid(test, env, dev, IOPF_H_ANSWER);
	hp = iopf_test_attach_pasid(test, env, dev, 2, IOPF_H_ANSWER);
	m = iopf_test_add_device(env, env->queue, dev);

	l1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l1, 0);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l1, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m);
	iopf_mock_detach(test, hp->attach);
	iopf_mock_detach(test, hr->attach);

	l2 = make_fault(env, 0, 2, true, false);
	iopf_h_report(env->h, dev, &l2, -EINVAL);
	p3 = make_fault(env, 0, 3, false, false);
	iopf_h_report(env->h, dev, &p3, -EINVAL);
	l4 = make_fault(env, 2, 4, true, true);
	iopf_h_report(env->h, dev, &l4, -EINVAL);

	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(hr), 1);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(hp), 0);
	iopf_h_expect_log_count(test, env->log, 4);
	iopf_h_expect_resp(test, env->log, 1, dev, &l2, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp(test, env->log, 2, dev, &p3, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp(test, env->log, 3, dev, &l4, IOMMU_PAGE_RESP_INVALID);
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
	struct iopf_h_member *m;
	struct iopf_queue *other;
	struct device *nodev;
	int ret;

	other = iopf_h_queue_alloc(test, "iopf-kunit-other");
	no_resp = iopf_mock_iommu_create(test, IOPF_MOCK_NO_PAGE_RESPONSE,
					 env->log);
	nodev = iopf_mock_dev_create(test, no_resp);

	m = iopf_test_add_device(env, env->queue, dev);
	ret = iopf_queue_add_device(env->queue, dev);
	KUNIT_EXPECT_EQ(test, ret, -EBUSY);
	ret = iopf_queue_add_device(other, dev);
	KUNIT_EXPECT_EQ(test, ret, -EBUSY);
	if (!ret)
		iopf_queue_remove_device(other, dev);

	iopf_h_remove(m);
	m = iopf_test_add_device(env, env->queue, dev);
	expect_idle_at_removal(test, env, m);
	m = iopf_test_add_device(env, other, dev);
	expect_idle_at_removal(test, env, m);

	ret = iopf_queue_add_device(env->queue, nodev);
	KUNIT_EXPECT_EQ(test, ret, -ENODEV);
	if (!ret)
		iopf_queue_remove_device(env->queue, nodev);

	iopf_h_expect_log_count(test, env->log, 0);
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
	struct iopf_h_member *m0, *m1;
	struct iopf_h_handle *h0, *h1;
	struct iopf_queue *other;

	other = iopf_h_queue_alloc(test, "iopf-kunit-other");
	h0 = iopf_test_attach_rid(test, env, d0, IOPF_H_KEEP);
	h1 = iopf_test_attach_rid(test, env, d1, IOPF_H_KEEP);
	m0 = iopf_test_add_device(env, env->queue, d0);
	m1 = iopf_test_add_device(env, env->queue, d1);

	l1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, d0, &l1, 0);
	l2 = make_fault(env, 0, 2, true, false);
	iopf_h_report(env->h, d0, &l2, 0);
	p3 = make_fault(env, 0, 3, false, false);
	iopf_h_report(env->h, d0, &p3, 0);
	k1 = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, d1, &k1, 0);
	KUNIT_EXPECT_EQ(test, h0->nkept, 2);
	KUNIT_EXPECT_EQ(test, h1->nkept, 1);
	iopf_h_expect_log_count(test, env->log, 0);

	/* The queue goes with both devices on it. */
	iopf_h_forget_member(m1);
	iopf_h_forget_member(m0);
	iopf_h_queue_free_now(test, env->queue);
	env->queue = NULL;
	iopf_h_release_kept(h0);
	iopf_h_release_kept(h1);

	iopf_h_expect_log_count(test, env->log, 3);
	iopf_h_expect_resp_once(test, env->log, d0, &l1, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp_once(test, env->log, d0, &l2, IOMMU_PAGE_RESP_INVALID);
	iopf_h_expect_resp_once(test, env->log, d1, &k1, IOMMU_PAGE_RESP_INVALID);

	m0 = iopf_test_add_device(env, other, d0);
	m1 = iopf_test_add_device(env, other, d1);

	h0->mode = IOPF_H_ANSWER;
	l3 = make_fault(env, 0, 3, true, false);
	iopf_h_report(env->h, d0, &l3, 0);
	KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h0), 3);
	IOPF_H_EXPECT_GROUP(test, h0, 2, &l3);
	iopf_h_expect_log_count(test, env->log, 4);
	iopf_h_expect_resp(test, env->log, 3, d0, &l3, IOMMU_PAGE_RESP_SUCCESS);

	expect_idle_at_removal(test, env, m1);
	expect_idle_at_removal(test, env, m0);
}

#ifdef CONFIG_IOMMU_IOPF_RUST
/* Releases the work item of @data's test handle when the removal answers. */
static void iopf_test_release_on_answer(void *data, struct device *dev,
					const struct iopf_fault *evt,
					const struct iommu_page_response *msg)
{
	struct iopf_h_handle *h = data;

	complete(&h->work_release);
}

/*
 * Reports @l, a last request of @env's device, to a handler that defers it
 * to the queue's workqueue, where its work item starts and holds the group
 * until the mock IOMMU's next response; the device is forgotten by the
 * harness, for the case to take it off its queue. Returns the handle.
 */
static struct iopf_h_handle *iopf_test_hold_work(struct kunit *test,
						 struct iopf_test_env *env,
						 struct iopf_fault *l)
{
	struct device *dev = env->dev[0];
	struct iopf_h_handle *h;
	struct iopf_h_member *m;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_DEFER);
	h->hold_work = true;
	m = iopf_test_add_device(env, env->queue, dev);
	*l = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, l, 0);
	wait_for_completion(&h->work_started);

	/* The work item goes on once the removal has answered its group. */
	iopf_mock_iommu_set_tap(env->mock, iopf_test_release_on_answer, h);
	iopf_h_forget_member(m);
	return h;
}
#endif

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
	struct iopf_fault l;
	struct iopf_h_handle *h = iopf_test_hold_work(test, env, &l);

	iopf_queue_remove_device(env->queue, dev);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_INVALID);

	wait_for_completion(&h->work_done);
	iopf_mock_iommu_set_tap(env->mock, NULL, NULL);
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done), 1);
	iopf_h_expect_log_count(test, env->log, 1);
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
	struct iopf_fault l;
	struct iopf_h_handle *h = iopf_test_hold_work(test, env, &l);

	iopf_h_queue_free_now(test, env->queue);
	env->queue = NULL;
	iopf_mock_iommu_set_tap(env->mock, NULL, NULL);

	/* iopf_queue_free() returned: the work item ran. */
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done), 1);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_INVALID);
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
	struct iopf_h_handle *h;
	struct iopf_h_member *m;
	struct iopf_group *group;
	struct iopf_fault l;

	h = iopf_test_attach_rid(test, env, dev, IOPF_H_DEFER);
	h->queue_twice = true;
	h->hold_work = true;
	m = iopf_test_add_device(env, env->queue, dev);
	l = make_fault(env, 0, 1, true, false);
	iopf_h_report(env->h, dev, &l, 0);

	/* The work item started after the second call, unless the race was lost. */
	if (!h->started_before_second)
		KUNIT_EXPECT_EQ(test, h->second_queue_ret, -EBUSY);
	complete_all(&h->work_release);
	KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(dev), 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&h->works_done),
			h->second_queue_ret ? 1 : 2);

	/* The work item left the group to the test, which answers it. */
	KUNIT_ASSERT_EQ(test, h->nkept, 1);
	group = iopf_h_kept_pop(h);
	iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(group);
	iopf_h_expect_log_count(test, env->log, 1);
	iopf_h_expect_resp(test, env->log, 0, dev, &l, IOMMU_PAGE_RESP_SUCCESS);
	expect_idle_at_removal(test, env, m);
}

/* Cases: concurrency */

#define IOPF_TEST_CONC_DEVS	4
#define IOPF_TEST_CONC_GROUPS	64
#define IOPF_TEST_CONC_PASID	1

/* Partials sent for group @grpid by the concurrent reporters. */
static unsigned int iopf_test_nr_partials(u32 grpid)
{
	return grpid % 4;
}

/* Requests in each group of the concurrent reporters, last page included. */
static unsigned int iopf_test_conc_group_size(u32 grpid)
{
	return iopf_test_nr_partials(grpid) + 1;
}

static int iopf_test_reporter_fn(void *data)
{
	struct iopf_h_dev *hd = data;
	struct iopf_fault evt;
	unsigned int i, p;

	for (i = 0; i < IOPF_TEST_CONC_GROUPS; i++) {
		bool pasid_valid = i & 1;
		u32 pasid = pasid_valid ? IOPF_TEST_CONC_PASID : 0;

		for (p = 0; p < iopf_test_nr_partials(i); p++) {
			evt = iopf_h_fault(hd->h, pasid, pasid_valid, i, false,
					   0, IOPF_H_UNCHECKED, 0);
			if (iommu_report_device_fault(hd->dev, &evt))
				hd->errors++;
		}
		evt = iopf_h_fault(hd->h, pasid, pasid_valid, i, true, 0,
				   IOPF_H_UNCHECKED, 0);
		if (iommu_report_device_fault(hd->dev, &evt))
			hd->errors++;
		cond_resched();
	}

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
	struct iopf_h_opts opts = {
		.ndevs = IOPF_TEST_CONC_DEVS,
		.group_size = iopf_test_conc_group_size,
	};
	struct iopf_test_env *env = iopf_test_setup_opts(test, &opts);
	struct iopf_h_handle *h[IOPF_TEST_CONC_DEVS][2];
	unsigned int i, j, n, bad = 0;
	u8 (*seen)[IOPF_TEST_CONC_GROUPS];
	struct iopf_h_threads *threads;
	struct iopf_mock_resp resp;

	threads = kunit_kzalloc(test, sizeof(*threads), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, threads);
	seen = kunit_kcalloc(test, IOPF_TEST_CONC_DEVS, sizeof(*seen),
			     GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, seen);

	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++) {
		h[i][0] = iopf_test_attach_rid(test, env, env->dev[i],
					       IOPF_H_DEFER);
		h[i][1] = iopf_test_attach_pasid(test, env, env->dev[i],
						 IOPF_TEST_CONC_PASID,
						 IOPF_H_DEFER);
		for (j = 0; j < 2; j++)
			h[i][j]->check_groups = true;
	}
	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++)
		iopf_test_add_device(env, env->queue, env->dev[i]);

	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++)
		if (!iopf_h_thread_start(threads, iopf_test_reporter_fn,
					 &env->h->devs[i], "iopf_kunit_rep", i))
			break;
	/* No assertion may end the test while reporters run. */
	iopf_h_threads_wait(threads);
	KUNIT_ASSERT_EQ(test, threads->started, IOPF_TEST_CONC_DEVS);

	for (i = 0; i < IOPF_TEST_CONC_DEVS; i++) {
		KUNIT_EXPECT_EQ(test, iopf_queue_flush_dev(env->dev[i]), 0);
		KUNIT_EXPECT_EQ_MSG(test, env->h->devs[i].errors, 0,
				    "failed reports, dev %u", i);
		for (j = 0; j < 2; j++) {
			KUNIT_EXPECT_EQ(test, atomic_read(&env->h->bad_groups),
					0);
			KUNIT_EXPECT_EQ(test, iopf_h_deliveries(h[i][j]),
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
	KUNIT_CASE_PARAM(iopf_test_grouping, iopf_test_groupings_gen_params),
	KUNIT_CASE(iopf_test_partial_bound),
	KUNIT_CASE_PARAM(iopf_test_lookup, iopf_test_lookups_gen_params),
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
