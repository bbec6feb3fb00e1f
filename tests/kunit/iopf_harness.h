/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The test harness shared by the IOPF KUnit suites (iopf, iopf_reliability,
 * iopf_bench, iopf_diff), on top of the mock IOMMU (iopf_mock_iommu.h).
 *
 * It holds what every suite needs, once:
 * - a context (struct iopf_h): a mock IOMMU, devices behind it, an IOPF
 *   queue and, if asked, per-request response accounting;
 * - the fault builder, iopf_h_fault(), and the report-and-expect helper,
 *   iopf_h_report();
 * - one fault handler, whose mode (enum iopf_h_mode) is set per handle or
 *   per group (in the last request's tag);
 * - one cleanup: a device leaves its queue flushed first, and the groups its
 *   handles kept are given up as the core requires;
 * - per-request response accounting by sequence number, fed by the mock's
 *   page_response tap;
 * - one helper to run threads (reporters and the like) and wait for them.
 *
 * Every request built here carries a sequence number in private_data[0]
 * (0: not tracked) and a tag in private_data[1]: IOPF_H_TAG_MAGIC in its
 * upper 32 bits, then the IOPF_H_TAG_* bits below. A request whose upper
 * bits are not the magic (the bench's) is left to its handle's settings.
 */
#ifndef _IOPF_HARNESS_H
#define _IOPF_HARNESS_H

#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/iommu.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "iopf_mock_iommu.h"

#define IOPF_H_MAX_DEVS			8
#define IOPF_H_MAX_DELIVERIES		16
#define IOPF_H_MAX_GROUP_FAULTS		8U
#define IOPF_H_MAX_THREADS		12

/* What the handler does with a group. */
enum iopf_h_mode {
	/* iopf_group_response(code) and iopf_free_group(), in the handler */
	IOPF_H_ANSWER,
	/* iopf_queue_work(); the work item answers with code and frees */
	IOPF_H_DEFER,
	/* iopf_group_dequeue(), then a work item of the harness answers */
	IOPF_H_HANDOFF,
	/* kept pending on the handle's kept list (dequeued first if asked) */
	IOPF_H_KEEP,
	/* the handler fails: the core answers FAILURE */
	IOPF_H_FAIL,
	IOPF_H_NR_MODES,
};

/* The tag of a request, private_data[1]: magic << 32 | bits. */
#define IOPF_H_TAG_MAGIC		0x1e1aU
/* Bits 0-7: an enum iopf_h_mode, used if IOPF_H_TAG_OWN_MODE. */
#define IOPF_H_TAG_MODE_MASK		0xffU
/* The group's mode is the tag's, not its handle's. */
#define IOPF_H_TAG_OWN_MODE		BIT(8)
/* The handler snapshots the group in iopf_h::rec. */
#define IOPF_H_TAG_RECORD		BIT(9)
/* The handler adds the group's partials to iopf_h::partials_delivered. */
#define IOPF_H_TAG_SUM			BIT(10)
/* The group is answered with the code in bits 16-23, not its handle's. */
#define IOPF_H_TAG_OWN_CODE		BIT(11)
#define IOPF_H_TAG_CODE_SHIFT		16
#define IOPF_H_TAG_CODE(code)		(IOPF_H_TAG_OWN_CODE |		\
					 ((code) << IOPF_H_TAG_CODE_SHIFT))
/* A mode of the tag's own: IOPF_H_MODE(IOPF_H_DEFER). */
#define IOPF_H_MODE(mode)		(IOPF_H_TAG_OWN_MODE | (mode))

/* Acceptable response codes of a request, as a mask of BIT(code). */
#define IOPF_H_OK			BIT(IOMMU_PAGE_RESP_SUCCESS)
#define IOPF_H_INVALID			BIT(IOMMU_PAGE_RESP_INVALID)
#define IOPF_H_FAILURE			BIT(IOMMU_PAGE_RESP_FAILURE)
/* Responses expected of a request whose responses are not accounted. */
#define IOPF_H_UNCHECKED		0xff

struct iopf_h;
struct iopf_h_handle;

/* A snapshot of a group as the handler saw it. */
struct iopf_h_delivery {
	size_t fault_count;
	unsigned int nfaults;
	struct iommu_fault faults[IOPF_H_MAX_GROUP_FAULTS];
	struct iommu_fault last;
};

/* A device of a harness context. */
struct iopf_h_dev {
	struct iopf_h *h;
	struct device *dev;
	unsigned int index;
	/* The queue the device is on, or NULL; under @member. */
	struct iopf_queue *queue;
	/*
	 * Serialises what a driver serialises for a device: its reports,
	 * flushes and removal, and its handles' kept groups.
	 */
	struct mutex member;
	/* The handles attached to the device, whose kept groups it owns. */
	struct list_head handles;
	/* Failed reports of the device's reporter thread. */
	unsigned int errors;
};

/*
 * An attach handle whose domain has the harness handler (or none), and what
 * that handler does with the groups that reach it.
 */
struct iopf_h_handle {
	struct iommu_attach_handle handle;
	struct iopf_h *h;
	struct iopf_h_dev *hd;
	struct iopf_mock_attach *attach;
	struct list_head dev_node;

	/* Behaviour, set by the test */
	enum iopf_h_mode mode;
	enum iommu_page_response_code code;
	/* KEEP: iopf_group_dequeue() first. */
	bool dequeue;
	/* KEEP: fail with -ENOSPC past this many kept groups (0: no limit). */
	unsigned int max_kept;
	/* DEFER: the work item sleeps this long before it answers. */
	unsigned int work_delay_ms;
	/* DEFER: the work item waits for work_release before it answers. */
	bool hold_work;
	/* DEFER: queue the work item twice; the test answers the group. */
	bool queue_twice;
	/* Record each group in deliveries[] (off for the bench). */
	bool record;
	/* Check each group's consistency (iopf_h_group_ok()). */
	bool check_groups;
	/* KEEP: the device's member lock must be held (lockdep). */
	bool keep_under_member;
	/* Called after the harness answered a group, before it frees it. */
	void (*answered)(struct iopf_h_handle *hh, struct iopf_group *group);
	void *priv;

	/* What happened; lock protects deliveries[] and kept. */
	spinlock_t lock;
	unsigned int ndeliveries;
	struct iopf_h_delivery deliveries[IOPF_H_MAX_DELIVERIES];
	struct list_head kept;
	unsigned int nkept;
	atomic_t works_done;
	struct completion work_started;
	struct completion work_release;
	struct completion work_done;
	/* queue_twice: the second iopf_queue_work(), and whether it had started */
	int second_queue_ret;
	bool started_before_second;
};

/* What a context is made of. */
struct iopf_h_opts {
	/* IOPF_MOCK_* flags of the mock IOMMU */
	unsigned int mock_flags;
	/* devices behind it */
	unsigned int ndevs;
	/* capacity of the mock's response log (at least 1) */
	unsigned int log_size;
	/* a log of the test's to use instead (log_size is then ignored) */
	struct iopf_mock_log *log;
	/* sequence numbers accounted (0: no accounting and no tap) */
	unsigned int max_seq;
	/* a workqueue for handed-off groups (IOPF_H_HANDOFF) */
	bool handoff;
	/* a group size that every group must have, by grpid (check_groups) */
	unsigned int (*group_size)(u32 grpid);
};

/* A test's harness context. */
struct iopf_h {
	struct kunit *test;
	struct iopf_mock_log *log;
	struct iopf_mock_iommu *mock;
	struct iopf_queue *queue;
	unsigned int ndevs;
	struct iopf_h_dev devs[IOPF_H_MAX_DEVS];
	unsigned int (*group_size)(u32 grpid);

	/* Accounting, per sequence number (0 is "not tracked") */
	unsigned int max_seq;
	atomic_t next_seq;
	atomic_t *got;
	u8 *expect;
	u8 *codes_ok;
	u8 *code;
	atomic_t untracked;
	atomic_t mismatched;
	atomic_t seq_overflow;
	/* Figures of the accounting line, kept by the test */
	u64 faults;
	unsigned int scenarios;
	unsigned int injected;

	/* Observers of every group delivered and every response (iopf_diff) */
	void (*on_group)(void *data, struct iopf_h_handle *hh,
			 struct iopf_group *group, enum iopf_h_mode mode);
	void (*on_response)(void *data, struct device *dev,
			    const struct iopf_fault *evt,
			    const struct iommu_page_response *msg);
	void *observer;

	/* Handler */
	atomic_t delivered;
	atomic_t bad_groups;
	atomic64_t partials_delivered;
	/* Protects rec_* and handoff. */
	spinlock_t lock;
	/* the last group tagged IOPF_H_TAG_RECORD, by sequence number */
	u64 rec_last;
	size_t rec_fault_count;
	unsigned int rec_nfaults;
	u64 rec_seqs[IOPF_H_MAX_GROUP_FAULTS];
	struct list_head handoff;
	struct work_struct handoff_work;
	struct workqueue_struct *wq;
	/* Groups handed off and not answered yet, for iopf_h_handoff_flush() */
	atomic_t handoffs;
	wait_queue_head_t handoff_wait;
};

/* A device on a queue, flushed and removed when the test ends. */
struct iopf_h_member {
	struct iopf_h_dev *hd;
	struct iopf_queue *queue;
};

/* Threads started by iopf_h_thread_start(), waited for together. */
struct iopf_h_thread {
	int (*fn)(void *arg);
	void *arg;
	struct completion done;
};

struct iopf_h_threads {
	unsigned int started;
	struct iopf_h_thread t[IOPF_H_MAX_THREADS];
};

/* Context */
struct iopf_h *iopf_h_create(struct kunit *test, const struct iopf_h_opts *opts);
struct iopf_h_dev *iopf_h_dev_of(struct iopf_h *h, struct device *dev);
struct iopf_h_dev *iopf_h_add_dev(struct iopf_h *h,
				  struct iopf_mock_iommu *mock);
void iopf_h_set_tap(struct iopf_h *h, struct iopf_mock_iommu *mock);
struct iopf_queue *iopf_h_queue_alloc(struct kunit *test, const char *name);
void iopf_h_queue_free_now(struct kunit *test, struct iopf_queue *queue);

/* Faults */
struct iopf_fault iopf_h_fault(struct iopf_h *h, u32 pasid, bool pasid_valid,
			       u32 grpid, bool last, u32 tag, u8 expect,
			       u8 codes_ok);
u64 iopf_h_seq(const struct iommu_fault *f);
bool iopf_h_fault_eq(const struct iommu_fault *a, const struct iommu_fault *b);
/* iopf_h_report() with no expectation on the return value */
#define IOPF_H_ANY_RET			INT_MIN
int iopf_h_report(struct iopf_h *h, struct device *dev, struct iopf_fault *evt,
		  int expected);
bool iopf_h_group_ok(struct iopf_h *h, struct iopf_group *group);

/* Handles and the handler */
int iopf_h_handler(struct iopf_group *group);
void iopf_h_handle_init(struct iopf_h *h, struct iopf_h_handle *hh,
			struct iopf_h_dev *hd, enum iopf_h_mode mode);
struct iopf_h_handle *iopf_h_attach(struct iopf_h *h,
				    struct iopf_mock_iommu *mock,
				    struct device *dev, ioasid_t pasid,
				    unsigned int type, bool handler,
				    enum iopf_h_mode mode);
struct iopf_h_handle *iopf_h_attach_rid(struct iopf_h *h, struct device *dev,
					enum iopf_h_mode mode);
struct iopf_h_handle *iopf_h_attach_pasid(struct iopf_h *h, struct device *dev,
					  ioasid_t pasid, enum iopf_h_mode mode);
void iopf_h_detach(struct iopf_h_handle *hh);
unsigned int iopf_h_deliveries(struct iopf_h_handle *hh);
void iopf_h_expect_group(struct kunit *test, struct iopf_h_handle *hh,
			 unsigned int idx, const struct iopf_fault *const *faults,
			 unsigned int n);
#define IOPF_H_EXPECT_GROUP(test, hh, idx, ...)				\
	do {								\
		const struct iopf_fault *__faults[] = { __VA_ARGS__ };	\
									\
		iopf_h_expect_group(test, hh, idx, __faults,		\
				    ARRAY_SIZE(__faults));		\
	} while (0)
void iopf_h_answer(struct iopf_h_handle *hh, struct iopf_group *group,
		   enum iommu_page_response_code code);
unsigned int iopf_h_nkept(struct iopf_h_handle *hh);
struct iopf_group *iopf_h_kept_pop(struct iopf_h_handle *hh);
unsigned int iopf_h_answer_kept(struct iopf_h_handle *hh,
				enum iommu_page_response_code code);
void iopf_h_release_kept(struct iopf_h_handle *hh);
void iopf_h_handoff_flush(struct iopf_h *h);

/* Queue membership and the flush-and-remove cleanup */
int iopf_h_dev_add(struct iopf_h_dev *hd, struct iopf_queue *queue);
void iopf_h_dev_remove(struct iopf_h_dev *hd);
struct iopf_h_member *iopf_h_add(struct iopf_h_dev *hd,
				 struct iopf_queue *queue);
struct iopf_h_member *iopf_h_adopt(struct iopf_h_dev *hd);
void iopf_h_remove(struct iopf_h_member *m);
void iopf_h_forget_member(struct iopf_h_member *m);

/* Response log of the mock */
void iopf_h_expect_resp(struct kunit *test, struct iopf_mock_log *log,
			unsigned int idx, struct device *dev,
			const struct iopf_fault *evt, u32 code);
void iopf_h_expect_resp_once(struct kunit *test, struct iopf_mock_log *log,
			     struct device *dev, const struct iopf_fault *evt,
			     u32 code);
void iopf_h_expect_log_count(struct kunit *test, struct iopf_mock_log *log,
			     unsigned int count);

/* Accounting */
struct iopf_h_tally {
	u64 lost;
	u64 duplicated;
	u64 wrong;
	u64 mismatched;
	u64 bad_groups;
	u64 seq_overflow;
};

unsigned int iopf_h_got(struct iopf_h *h, const struct iopf_fault *evt);
u32 iopf_h_code(struct iopf_h *h, const struct iopf_fault *evt);
unsigned long iopf_h_responses(struct iopf_h *h);
void iopf_h_expect_got(struct kunit *test, struct iopf_h *h,
		       const struct iopf_fault *evt, unsigned int n, u32 code);
void iopf_h_account_reset(struct iopf_h *h);
void iopf_h_tally(struct iopf_h *h, struct iopf_h_tally *t);
void iopf_h_expect_tally(struct kunit *test, const struct iopf_h_tally *t);
void iopf_h_account(struct iopf_h *h, const char *suite, const char *extra);

/* Threads */
bool iopf_h_thread_start(struct iopf_h_threads *ts, int (*fn)(void *arg),
			 void *arg, const char *name, unsigned int index);
void iopf_h_threads_wait(struct iopf_h_threads *ts);

#endif /* _IOPF_HARNESS_H */
