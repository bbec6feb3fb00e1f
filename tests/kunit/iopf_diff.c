// SPDX-License-Identifier: GPL-2.0
/*
 * Differential suite of the IOMMU I/O page fault framework: iopf_diff.
 *
 * A seeded generator builds random streams of operations on the public API
 * of <linux/iommu.h>, through the mock IOMMU and the shared test harness:
 * partial and last page requests with random devices, PASIDs (valid or not),
 * group indexes (a small range, so that groups collide and interleave) and
 * permissions, each group handled the way the stream chose (answered inline,
 * deferred to the queue's workqueue, handed off, kept, failed); kept groups
 * answered with random codes, dequeued or freed; iopf_queue_flush_dev(),
 * iopf_queue_discard_partial(); devices removed from their queue and added
 * again; fault-capable domains attached to and detached from a PASID or the
 * RID, and domains without a handler. The streams stay inside the contract
 * that io-pgfault.c accepts without a WARN_ON(): no report with a handler
 * for a device on no queue, no flush or removal of a device on no queue or
 * on another queue. A model of the devices, their attachments, their held
 * partials and kept groups is all the generator reads, so a stream is a
 * function of its seed alone.
 *
 * Every operation's observable effects form a canonical log: each
 * page_response() the mock IOMMU receives (device, PASID, group index, code,
 * the request it answers), each group a handler receives with its requests
 * in order and the mode that handles it, each API call that fails. Every
 * record carries the index of the operation that caused it. The log is made
 * deterministic by running each stream in one thread and flushing after
 * every operation that may defer (the queue's workqueue and the harness's
 * handoff workqueue), so that an operation's effects are all in before the
 * next one starts; in the concurrent mode (4 threads on separate devices of
 * one queue) each device has a log of its own, compared on its own.
 *
 * The documented differences between the two cores are taken out of the
 * comparison in one place, diff_rules[] and diff_normalise(); anything else
 * that differs is a divergence. Each stream's log is hashed as it goes, and
 * its digest printed every DIFF_CHECKPOINT operations and at its end:
 *
 *   # iopf_diff: mode=seq seed=S dev=-1 at=N digest=H
 *   # iopf_diff: mode=seq seed=S dev=-1 ops=N done=N records=N digest=H end
 *
 * (ops: the stream's random operations; done: with those that drain it).
 *
 * `cargo xtask test` runs the same seeds on both kernels and compares the
 * digests; where they differ it boots both again with iopf_kunit.diff_replay
 * to print the records of the first chunk that differs, one line each
 * ("# iopf_diff_line: ..."), and shows the first pair of lines that differ.
 */
#include <kunit/test.h>
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/moduleparam.h>
#include <linux/printk.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>

#include "iopf_harness.h"

#define DIFF_DEVS		4
#define DIFF_QUEUES		2
/* Attachment slots of a device: the RID, then DIFF_PASIDS PASIDs. */
#define DIFF_PASIDS		3
#define DIFF_SLOTS		(1 + DIFF_PASIDS)
/* Groups a device's handlers keep at most. */
#define DIFF_MAX_KEPT		32
/*
 * Partials a device holds at most: far below the Rust core's bound
 * (CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL), which the streams must not reach.
 */
#define DIFF_MAX_HELD		256
/* Group indexes: 0-15, then three beyond PCIe's 9 bits. */
#define DIFF_SMALL_GRPIDS	16
#define DIFF_GRPIDS		(DIFF_SMALL_GRPIDS + 3)
#define DIFF_CHECKPOINT		4096
/* Records of one operation, at most: a group of DIFF_MAX_HELD partials. */
#define DIFF_OP_RECS		(DIFF_MAX_HELD + 2 * DIFF_MAX_KEPT + 16)
#define DIFF_CONC_THREADS	4

#ifdef CONFIG_IOMMU_IOPF_RUST
static_assert(DIFF_MAX_HELD < CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL);
#endif

/*
 * The streams: iopf_kunit.diff_seed is the base of the random seeds (and
 * cargo xtask picks a new one on every run), diff_seeds streams of diff_ops
 * operations, and diff_conc_seeds runs of DIFF_CONC_THREADS streams of
 * diff_conc_ops operations each. diff_replay=MODE:SEED:OPS:FROM:TO:DEV runs
 * one stream only (of device DEV in the concurrent mode, -1 otherwise) and
 * prints its operations from FROM to TO (excluded) with their records.
 */
static ulong diff_seed = 1;
module_param(diff_seed, ulong, 0444);
MODULE_PARM_DESC(diff_seed, "base of the iopf_diff seeds");
static uint diff_seeds = 10;
module_param(diff_seeds, uint, 0444);
MODULE_PARM_DESC(diff_seeds, "random streams of iopf_diff_sequential");
static uint diff_ops = 10000;
module_param(diff_ops, uint, 0444);
MODULE_PARM_DESC(diff_ops, "operations per stream of iopf_diff_sequential");
static uint diff_conc_seeds = 1;
module_param(diff_conc_seeds, uint, 0444);
MODULE_PARM_DESC(diff_conc_seeds, "runs of iopf_diff_concurrent");
static uint diff_conc_ops = 2500;
module_param(diff_conc_ops, uint, 0444);
MODULE_PARM_DESC(diff_conc_ops, "operations per thread of iopf_diff_concurrent");
static char *diff_replay;
module_param(diff_replay, charp, 0444);
MODULE_PARM_DESC(diff_replay, "MODE:SEED:OPS:FROM:TO:DEV: one stream, printed");

/* Domains, by what they are: their type, and whether they have a handler. */
enum diff_dom {
	DOM_NONE,
	DOM_HANDLER,
	DOM_HANDLER_NESTED,
	DOM_NO_HANDLER,
	DOM_NO_HANDLER_NESTED,
	DOM_NR,
};

static bool diff_dom_handler(u8 dom)
{
	return dom == DOM_HANDLER || dom == DOM_HANDLER_NESTED;
}

static bool diff_dom_nested(u8 dom)
{
	return dom == DOM_HANDLER_NESTED || dom == DOM_NO_HANDLER_NESTED;
}

/* The PASIDs of the slots, and the PASIDs requests carry. */
static const u32 diff_slot_pasid[DIFF_SLOTS] = { IOMMU_NO_PASID, 1, 2, 0xfffff };
static const u32 diff_req_pasid[] = { 0, 1, 2, 0xfffff, 7 };
static const u32 diff_big_grpid[] = { 600, 0xffff, 0xfffffffe };

enum diff_kind {
	OP_REPORT,
	OP_ANSWER,
	OP_DEQUEUE,
	OP_FREE,
	OP_FLUSH,
	OP_DISCARD,
	OP_REMOVE,
	OP_ADD,
	OP_ATTACH,
	OP_DETACH,
	OP_NR,
};

static const char *const diff_kind_name[OP_NR] = {
	"report", "answer", "dequeue", "free", "flush", "discard", "remove",
	"add", "attach", "detach",
};

static const char *const diff_mode_name[IOPF_H_NR_MODES] = {
	"answer", "defer", "handoff", "keep", "fail",
};

/* Documented differences, the one place where they are told apart */

enum diff_rule_id {
	RULE_NONE,
	RULE_PARTIAL_BOUND,
	RULE_FAULT_TYPE,
	RULE_SECOND_RESPONSE,
	RULE_FREE_UNANSWERED,
	RULE_REMOVAL_ORDER,
	RULE_REMOVAL_FREES,
	RULE_BAD_INPUT,
	RULE_NR,
};

struct diff_rule {
	const char *name;
	/* what each core does, and how the comparison leaves it out */
	const char *differs;
	const char *normalised;
};

/*
 * The differences between io-pgfault.c and the Rust core that
 * Documentation/iommu/iopf-rust.rst documents as intended. Each is either
 * kept out of the streams by the generator, or rewritten by
 * diff_normalise() into a record that says so, after checking that each
 * core did exactly what is documented (otherwise the raw records stay, and
 * the case fails). Printed at the start of the suite, for cargo xtask.
 */
static const struct diff_rule diff_rules[RULE_NR] = {
	[RULE_PARTIAL_BOUND] = {
		"partial-bound",
		"Rust holds at most CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL (2048) partials per device and drops the oldest group past it, C holds them all",
		"not generated: a device holds at most DIFF_MAX_HELD (256) partials",
	},
	[RULE_FAULT_TYPE] = {
		"fault-type",
		"Rust rejects a fault type other than PAGE_REQ (-EINVAL, no response), C handles it as a page request once a handler is found",
		"generated only where no handler is found, where both fail it with -EINVAL and no response",
	},
	[RULE_SECOND_RESPONSE] = {
		"second-response",
		"Rust drops a second iopf_group_response() to a group, C sends it",
		"C's one response and Rust's none become one 'documented' record",
	},
	[RULE_FREE_UNANSWERED] = {
		"free-unanswered",
		"Rust answers INVALID a group freed without a response, C sends nothing",
		"Rust's INVALID response and C's none become one 'documented' record",
	},
	[RULE_REMOVAL_ORDER] = {
		"removal-order",
		"iopf_queue_remove_device() answers the pending groups newest first in C (list_add), oldest first in Rust",
		"the records of a removal are compared as a set (sorted)",
	},
	[RULE_REMOVAL_FREES] = {
		"removal-frees",
		"iopf_queue_remove_device() frees the pending groups in C, Rust leaves them to their handler",
		"the stream gives them up with iopf_mock_release_removed_group() (frees on Rust, nothing on C); no record",
	},
	[RULE_BAD_INPUT] = {
		"bad-input",
		"a device in no iommu group, NULL arguments, flush or removal of a device on no queue, removal with the wrong queue: C WARNs or crashes",
		"not generated: the iopf_reliability suite tests them",
	},
};

/* The canonical log */

enum diff_rec_kind {
	REC_RESP,
	REC_GROUP,
	REC_FAULT,
	REC_RET,
	REC_DOCUMENTED,
	REC_ANOMALY,
};

/*
 * One record of the log; its bytes are hashed, so every field is set
 * (the whole record is zeroed first) and none depends on addresses or
 * timing: a request is named by its number in its stream (id).
 */
struct diff_rec {
	u32 op;
	u8 kind;
	u8 dev;
	u8 sub;
	u8 pad;
	u32 flags;
	u32 pasid;
	u32 grpid;
	u32 perm;
	s32 val;
	u32 pad2;
	u64 id;
};

/* A stream's log: the records of the current operation, and the digest. */
struct diff_log {
	/* Protects op, n, overflow and recs: work items add records too. */
	spinlock_t lock;
	u32 op;
	unsigned int n;
	bool overflow;
	struct diff_rec recs[DIFF_OP_RECS];
	u64 digest;
	u64 records;
};

/* A kept group: the model's view, and the group itself. */
struct diff_kept {
	u64 id;
	u64 seq;
	u32 grpid;
	bool dequeued;
	bool answered;
	struct iopf_group *group;
};

/* What the generator knows of a device, and what the executor holds. */
struct diff_dev {
	struct iopf_h_dev *hd;
	unsigned int index;
	bool user_pasid_table;
	struct iommu_domain **dom;
	struct diff_log *log;
	/* Model */
	s8 queue;
	u8 slot[DIFF_SLOTS];
	u16 held[DIFF_GRPIDS];
	unsigned int nheld;
	unsigned int nkept;
	struct diff_kept kept[DIFF_MAX_KEPT];
	/* Handles of the slots */
	struct iopf_h_handle handle[DIFF_SLOTS];
};

struct diff_op {
	u8 kind;
	u8 dev;
	u8 queue;
	u8 slot;
	u8 dom;
	u8 mode;
	u8 code;
	u8 rule;
	bool pasid_valid;
	bool last;
	bool reaches;
	u32 type;
	u32 pasid;
	u32 grpid;
	u32 perm;
	unsigned int kept;
	int expect_ret;
};

enum diff_anomaly {
	/* a report returned what the model did not expect */
	ANOMALY_RET = 1,
	/* a group expected kept was not, or more were */
	ANOMALY_KEPT,
	/* a documented difference did not happen as documented */
	ANOMALY_RULE,
	/* more records in one operation than the log holds */
	ANOMALY_OVERFLOW,
};

/* One stream: its generator, its devices' model, its log. */
struct diff_stream {
	struct diff_ctx *ctx;
	/* the run's seed, and the stream's own (a thread's, concurrently) */
	u64 seed;
	u64 rng_seed;
	u64 rng;
	unsigned int ops;
	unsigned int done;
	u64 next_id;
	/* the devices this stream drives: all, or one (concurrent mode) */
	unsigned int first_dev;
	unsigned int ndevs;
	struct diff_log *log;
	const char *mode;
	unsigned int dump_from;
	unsigned int dump_to;
	unsigned int printed;
	bool dump;
	int dump_dev;
	u64 anomalies;
	u64 documented;
};

struct diff_ctx {
	struct kunit *test;
	struct iopf_h *h;
	struct iopf_mock_iommu *mock[2];
	struct iommu_domain *dom[2][DOM_NR];
	struct iopf_queue *queue[DIFF_QUEUES];
	struct diff_dev devs[DIFF_DEVS];
	struct iopf_h_tally tally;
	ktime_t start;
};

/* Random numbers: splitmix64, the same on every kernel and architecture. */
static u64 diff_next(u64 *s)
{
	u64 z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static u32 diff_below(struct diff_stream *st, u32 n)
{
	return (u32)(((diff_next(&st->rng) >> 32) * n) >> 32);
}

static bool diff_chance(struct diff_stream *st, u32 percent)
{
	return diff_below(st, 100) < percent;
}

/* Hashing: FNV-1a, 64 bits. */
static u64 diff_hash(u64 h, const void *data, size_t len)
{
	const u8 *p = data;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define DIFF_HASH_INIT		0xcbf29ce484222325ULL

/* Recording */

static struct diff_rec *diff_rec_new(struct diff_log *log)
{
	struct diff_rec *r;

	lockdep_assert_held(&log->lock);
	if (log->n >= DIFF_OP_RECS) {
		log->overflow = true;
		return NULL;
	}
	r = &log->recs[log->n++];
	memset(r, 0, sizeof(*r));
	r->op = log->op;
	return r;
}

static void diff_add(struct diff_log *log, u8 kind, u8 dev, u8 sub, s32 val,
		     u64 id, u32 grpid)
{
	struct diff_rec *r;
	unsigned long flags;

	spin_lock_irqsave(&log->lock, flags);
	r = diff_rec_new(log);
	if (r) {
		r->kind = kind;
		r->dev = dev;
		r->sub = sub;
		r->val = val;
		r->id = id;
		r->grpid = grpid;
	}
	spin_unlock_irqrestore(&log->lock, flags);
}

static u64 diff_id(const struct iommu_fault *f)
{
	return f->prm.addr >> PAGE_SHIFT;
}

static struct diff_dev *diff_dev_of(struct diff_ctx *ctx, struct device *dev)
{
	unsigned int i;

	for (i = 0; i < DIFF_DEVS; i++)
		if (ctx->devs[i].hd->dev == dev)
			return &ctx->devs[i];
	return NULL;
}

/* The mock's tap: a page response. */
static void diff_on_response(void *data, struct device *dev,
			     const struct iopf_fault *evt,
			     const struct iommu_page_response *msg)
{
	struct diff_dev *dd = diff_dev_of(data, dev);
	struct diff_rec *r;
	unsigned long flags;

	if (!dd)
		return;
	spin_lock_irqsave(&dd->log->lock, flags);
	r = diff_rec_new(dd->log);
	if (r) {
		r->kind = REC_RESP;
		r->dev = dd->index;
		r->pasid = msg->pasid;
		r->grpid = msg->grpid;
		r->val = msg->code;
		if (evt) {
			r->sub = 1;
			r->flags = evt->fault.prm.flags;
			r->id = diff_id(&evt->fault);
		}
	}
	spin_unlock_irqrestore(&dd->log->lock, flags);
}

/* The harness's handler: a group, with its requests in order. */
static void diff_on_group(void *data, struct iopf_h_handle *hh,
			  struct iopf_group *group, enum iopf_h_mode mode)
{
	const struct iommu_fault *last = &group->last_fault.fault;
	struct diff_dev *dd = diff_dev_of(data, hh->hd->dev);
	struct iopf_fault *iopf;
	struct diff_rec *r;
	unsigned long flags;

	if (!dd)
		return;
	spin_lock_irqsave(&dd->log->lock, flags);
	r = diff_rec_new(dd->log);
	if (r) {
		r->kind = REC_GROUP;
		r->dev = dd->index;
		r->sub = mode;
		r->pasid = last->prm.pasid;
		r->grpid = last->prm.grpid;
		r->val = group->fault_count;
		r->id = diff_id(last);
		/* which slot's handle: the lookup it went through */
		r->perm = hh - dd->handle;
	}
	list_for_each_entry(iopf, &group->faults, list) {
		r = diff_rec_new(dd->log);
		if (!r)
			break;
		r->kind = REC_FAULT;
		r->dev = dd->index;
		r->val = iopf->fault.type;
		r->flags = iopf->fault.prm.flags;
		r->pasid = iopf->fault.prm.pasid;
		r->grpid = iopf->fault.prm.grpid;
		r->perm = iopf->fault.prm.perm;
		r->id = diff_id(&iopf->fault);
	}
	spin_unlock_irqrestore(&dd->log->lock, flags);
}

/*
 * Lines are only worth comparing if none is lost: printk drops what the
 * console cannot keep up with, so a dump waits for it now and then.
 */
static void diff_printed(struct diff_stream *st)
{
	if (!(++st->printed % 16))
		pr_flush(1000, true);
}

static void diff_print_rec(struct diff_stream *st, const struct diff_rec *r)
{
	char line[160];

	switch (r->kind) {
	case REC_RESP:
		snprintf(line, sizeof(line),
			 "resp dev=%u pasid=%#x grpid=%#x code=%d req=%llu%s flags=%#x",
			 r->dev, r->pasid, r->grpid, r->val, r->id,
			 r->sub ? "" : " (no event)", r->flags);
		break;
	case REC_GROUP:
		snprintf(line, sizeof(line),
			 "group dev=%u slot=%u pasid=%#x grpid=%#x faults=%d last=%llu mode=%s",
			 r->dev, r->perm, r->pasid, r->grpid, r->val, r->id,
			 r->sub < IOPF_H_NR_MODES ? diff_mode_name[r->sub] : "?");
		break;
	case REC_FAULT:
		snprintf(line, sizeof(line),
			 "  fault dev=%u req=%llu type=%d flags=%#x pasid=%#x grpid=%#x perm=%#x",
			 r->dev, r->id, r->val, r->flags, r->pasid, r->grpid,
			 r->perm);
		break;
	case REC_RET:
		snprintf(line, sizeof(line), "ret dev=%u call=%s ret=%d", r->dev,
			 r->sub < OP_NR ? diff_kind_name[r->sub] : "?", r->val);
		break;
	case REC_DOCUMENTED:
		snprintf(line, sizeof(line),
			 "documented dev=%u rule=%s req=%llu grpid=%#x", r->dev,
			 r->sub < RULE_NR ? diff_rules[r->sub].name : "?",
			 r->id, r->grpid);
		break;
	default:
		snprintf(line, sizeof(line), "ANOMALY dev=%u what=%u val=%d req=%llu",
			 r->dev, r->sub, r->val, r->id);
		break;
	}
	pr_info("# iopf_diff_line: mode=%s seed=%llu dev=%d op=%u %s\n",
		st->mode, st->seed, st->dump_dev, r->op, line);
	diff_printed(st);
}

static int diff_rec_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct diff_rec));
}

/*
 * The documented differences of one operation: checks that the records of
 * this core are what diff_rules[] says it does, and replaces them with one
 * record that both cores produce. Returns false if they are not.
 */
static bool diff_normalise(struct diff_stream *st, const struct diff_op *op,
			   const struct diff_kept *k, struct diff_log *log)
{
	struct iopf_h *h = st->ctx->h;
	bool rust = IS_ENABLED(CONFIG_IOMMU_IOPF_RUST);
	const struct diff_rec *r = &log->recs[0];
	bool ok;

	switch (op->rule) {
	case RULE_SECOND_RESPONSE:
		/* C: one response, with the code; Rust: nothing. */
		ok = rust ? log->n == 0 :
		     log->n == 1 && r->kind == REC_RESP &&
		     r->val == op->code && r->id == k->id;
		/* C's second response is documented, not duplicated. */
		if (ok && !rust && k->seq < h->max_seq)
			h->expect[k->seq]++;
		break;
	case RULE_FREE_UNANSWERED:
		/* C: nothing; Rust: INVALID. */
		ok = !rust ? log->n == 0 :
		     log->n == 1 && r->kind == REC_RESP &&
		     r->val == IOMMU_PAGE_RESP_INVALID && r->id == k->id;
		/* C leaves the device waiting: not a lost response here. */
		if (ok && !rust && k->seq < h->max_seq)
			h->expect[k->seq] = 0;
		break;
	case RULE_REMOVAL_ORDER:
		sort(log->recs, log->n, sizeof(log->recs[0]), diff_rec_cmp,
		     NULL);
		return true;
	default:
		return true;
	}
	if (!ok)
		return false;
	log->n = 0;
	st->documented++;
	diff_add(log, REC_DOCUMENTED, op->dev, op->rule, 0, k->id, k->grpid);
	return true;
}

static void diff_anomaly(struct diff_stream *st, const struct diff_op *op,
			 enum diff_anomaly what, s32 val, u64 id)
{
	st->anomalies++;
	diff_add(st->log, REC_ANOMALY, op->dev, what, val, id, 0);
}

static bool diff_dumping(const struct diff_stream *st)
{
	return st->dump && st->done >= st->dump_from && st->done < st->dump_to;
}

/* Ends operation @st->done: normalises, hashes and maybe prints its records. */
static void diff_end_op(struct diff_stream *st, const struct diff_op *op,
			const struct diff_kept *k)
{
	struct diff_log *log = st->log;
	unsigned int i;

	if (!diff_normalise(st, op, k, log))
		diff_anomaly(st, op, ANOMALY_RULE, op->rule, k ? k->id : 0);
	if (log->overflow) {
		log->overflow = false;
		diff_anomaly(st, op, ANOMALY_OVERFLOW, log->n, 0);
	}
	for (i = 0; i < log->n; i++) {
		log->digest = diff_hash(log->digest, &log->recs[i],
					sizeof(log->recs[i]));
		if (diff_dumping(st))
			diff_print_rec(st, &log->recs[i]);
	}
	log->records += log->n;
	log->n = 0;
	st->done++;
	if (!(st->done % DIFF_CHECKPOINT)) {
		pr_info("# iopf_diff: mode=%s seed=%llu dev=%d at=%u digest=%016llx\n",
			st->mode, st->seed, st->dump_dev, st->done, log->digest);
		pr_flush(1000, true);
	}
	WRITE_ONCE(log->op, st->done);
}

/* The model */

static int diff_req_slot(u32 pasid)
{
	unsigned int i;

	for (i = 0; i < DIFF_SLOTS; i++)
		if (diff_slot_pasid[i] == pasid)
			return i;
	return -1;
}

/*
 * Whether a request finds a handler: io-pgfault.c's find_fault_handler().
 * With a PASID, the handle of that PASID (IOMMU_NO_PASID is the RID's),
 * else, with a user-managed PASID table, the RID's if its domain is
 * NESTED; without, the RID's. A domain without a handler counts as none.
 */
static bool diff_reaches(const struct diff_dev *dd, bool pasid_valid,
			 u32 pasid)
{
	int slot = pasid_valid ? diff_req_slot(pasid) : 0;

	if (slot >= 0 && dd->slot[slot] != DOM_NONE)
		return diff_dom_handler(dd->slot[slot]);
	if (!pasid_valid || !dd->user_pasid_table)
		return false;
	return diff_dom_nested(dd->slot[0]) && diff_dom_handler(dd->slot[0]);
}

static unsigned int diff_grpid_index(u32 grpid)
{
	unsigned int i;

	if (grpid < DIFF_SMALL_GRPIDS)
		return grpid;
	for (i = 0; i < ARRAY_SIZE(diff_big_grpid); i++)
		if (diff_big_grpid[i] == grpid)
			return DIFF_SMALL_GRPIDS + i;
	return 0;
}

static void diff_clear_held(struct diff_dev *dd)
{
	memset(dd->held, 0, sizeof(dd->held));
	dd->nheld = 0;
}

/* The generator */

/* A stream of the concurrent mode drives one device, on queue 0. */
static bool diff_concurrent(const struct diff_stream *st)
{
	return st->ndevs == 1;
}

static u8 diff_pick_queue(struct diff_stream *st)
{
	return diff_concurrent(st) ? 0 : diff_below(st, DIFF_QUEUES);
}

static struct diff_dev *diff_pick_dev(struct diff_stream *st)
{
	return &st->ctx->devs[st->first_dev + diff_below(st, st->ndevs)];
}

static bool diff_gen_report(struct diff_stream *st, struct diff_op *op)
{
	struct diff_dev *dd = diff_pick_dev(st);
	u32 g;

	op->kind = OP_REPORT;
	op->dev = dd->index;
	op->type = IOMMU_FAULT_PAGE_REQ;
	op->pasid_valid = diff_chance(st, 50);
	op->pasid = diff_req_pasid[diff_below(st, ARRAY_SIZE(diff_req_pasid))];
	g = diff_below(st, 100);
	if (g < 70)
		op->grpid = diff_below(st, 8);
	else if (g < 95)
		op->grpid = 8 + diff_below(st, 8);
	else
		op->grpid = diff_big_grpid[diff_below(st, 3)];
	op->last = diff_chance(st, 40) || dd->nheld >= DIFF_MAX_HELD;
	op->perm = diff_below(st, 16);
	op->reaches = diff_reaches(dd, op->pasid_valid, op->pasid);
	op->code = diff_below(st, 3);
	g = diff_below(st, 100);
	op->mode = g < 35 ? IOPF_H_ANSWER : g < 55 ? IOPF_H_DEFER :
		   g < 65 ? IOPF_H_HANDOFF : g < 85 ? IOPF_H_KEEP : IOPF_H_FAIL;
	if (op->mode == IOPF_H_KEEP && dd->nkept >= DIFF_MAX_KEPT)
		op->mode = IOPF_H_ANSWER;

	/* A report with a handler needs the device on a queue (C WARNs). */
	if (op->reaches && dd->queue < 0)
		return false;
	/* Another fault type only where no handler is found (RULE_FAULT_TYPE). */
	if (!op->reaches && diff_chance(st, 5))
		op->type = diff_chance(st, 50) ? 0 : IOMMU_FAULT_PAGE_REQ + 1;
	op->expect_ret = op->reaches ? 0 : -EINVAL;
	return true;
}

static struct diff_dev *diff_pick_kept(struct diff_stream *st)
{
	unsigned int i, n = 0, pick;

	for (i = 0; i < st->ndevs; i++)
		n += st->ctx->devs[st->first_dev + i].nkept;
	if (!n)
		return NULL;
	pick = diff_below(st, n);
	for (i = 0; i < st->ndevs; i++) {
		struct diff_dev *dd = &st->ctx->devs[st->first_dev + i];

		if (pick < dd->nkept)
			return dd;
		pick -= dd->nkept;
	}
	return NULL;
}

static bool diff_gen_kept(struct diff_stream *st, struct diff_op *op)
{
	struct diff_dev *dd = diff_pick_kept(st);
	struct diff_kept *k;
	u32 what;

	if (!dd)
		return false;
	op->dev = dd->index;
	op->kept = diff_below(st, dd->nkept);
	k = &dd->kept[op->kept];
	op->code = diff_below(st, 3);
	what = diff_below(st, 100);
	op->kind = what < 55 ? OP_ANSWER : what < 75 ? OP_DEQUEUE : OP_FREE;
	/* Freed while still pending, a group stays on C's list: answer it. */
	if (op->kind == OP_FREE && !k->answered && !k->dequeued)
		op->kind = OP_ANSWER;
	if (op->kind == OP_ANSWER && k->answered)
		op->rule = RULE_SECOND_RESPONSE;
	if (op->kind == OP_FREE && !k->answered)
		op->rule = RULE_FREE_UNANSWERED;
	return true;
}

/* A domain to attach: with a handler in 70% of the attachments. */
static u8 diff_pick_dom(struct diff_stream *st)
{
	u32 w = diff_below(st, 100);

	return w < 40 ? DOM_HANDLER : w < 70 ? DOM_HANDLER_NESTED :
	       w < 85 ? DOM_NO_HANDLER : DOM_NO_HANDLER_NESTED;
}

/* Draws the next operation of @st from its model alone. */
static void diff_generate(struct diff_stream *st, struct diff_op *op)
{
	struct diff_dev *dd;
	unsigned int tries;

	for (tries = 0; tries < 8; tries++) {
		u32 w = diff_below(st, 100);

		memset(op, 0, sizeof(*op));
		dd = diff_pick_dev(st);
		op->dev = dd->index;
		if (w < 66) {
			if (diff_gen_report(st, op))
				return;
			/* The device is on no queue: bring it back. */
			op->kind = OP_ADD;
			op->queue = diff_pick_queue(st);
			return;
		} else if (w < 78) {
			if (diff_gen_kept(st, op))
				return;
		} else if (w < 82) {
			op->kind = OP_FLUSH;
			if (dd->queue >= 0)
				return;
		} else if (w < 85) {
			op->kind = OP_DISCARD;
			op->queue = diff_below(st, DIFF_QUEUES);
			/*
			 * The concurrent streams share one queue, whose discard
			 * would reach the other streams' devices: none there.
			 */
			if (!diff_concurrent(st))
				return;
		} else if (w < 88) {
			op->kind = OP_REMOVE;
			op->rule = RULE_REMOVAL_ORDER;
			if (dd->queue >= 0)
				return;
		} else if (w < 91) {
			op->kind = OP_ADD;
			op->queue = diff_pick_queue(st);
			/* Mostly a device on no queue; else -EBUSY. */
			if (dd->queue < 0 || diff_chance(st, 30))
				return;
		} else {
			/*
			 * Attached slots detach at 40% of the attach rate, so
			 * that about 70% are attached, most with a handler.
			 */
			op->slot = diff_below(st, DIFF_SLOTS);
			op->dom = dd->slot[op->slot];
			if (op->dom == DOM_NONE) {
				op->kind = OP_ATTACH;
				op->dom = diff_pick_dom(st);
				return;
			}
			op->kind = OP_DETACH;
			if (diff_chance(st, 40))
				return;
		}
	}
	memset(op, 0, sizeof(*op));
	op->kind = diff_concurrent(st) ? OP_ADD : OP_DISCARD;
	op->dev = dd->index;
}

/*
 * The end of a stream: every kept group answered and freed, every device
 * removed from its queue and every domain detached.
 */
static bool diff_generate_drain(struct diff_stream *st, struct diff_op *op)
{
	unsigned int i, s;

	memset(op, 0, sizeof(*op));
	for (i = 0; i < st->ndevs; i++) {
		struct diff_dev *dd = &st->ctx->devs[st->first_dev + i];

		op->dev = dd->index;
		if (dd->nkept) {
			op->kept = dd->nkept - 1;
			op->kind = dd->kept[op->kept].answered ? OP_FREE :
				   OP_ANSWER;
			op->code = IOMMU_PAGE_RESP_SUCCESS;
			return true;
		}
		if (dd->queue >= 0) {
			op->kind = OP_REMOVE;
			op->rule = RULE_REMOVAL_ORDER;
			return true;
		}
		for (s = 0; s < DIFF_SLOTS; s++) {
			if (dd->slot[s] != DOM_NONE) {
				op->kind = OP_DETACH;
				op->slot = s;
				op->dom = dd->slot[s];
				return true;
			}
		}
	}
	return false;
}

/* The executor */

static struct iopf_queue *diff_queue(struct diff_stream *st, unsigned int q)
{
	return st->ctx->queue[q];
}

/* Takes the groups that @dd's handlers kept during the operation. */
static unsigned int diff_take_kept(struct diff_dev *dd, struct diff_kept *k)
{
	struct iopf_group *group;
	unsigned int s, n = 0;

	for (s = 0; s < DIFF_SLOTS; s++) {
		while ((group = iopf_h_kept_pop(&dd->handle[s]))) {
			if (!n++ && k) {
				k->group = group;
			} else {
				/* Not in the model: answer it, it must not leak. */
				iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
				iopf_free_group(group);
			}
		}
	}
	return n;
}

static void diff_drop_kept(struct diff_dev *dd, unsigned int i)
{
	memmove(&dd->kept[i], &dd->kept[i + 1],
		(dd->nkept - i - 1) * sizeof(dd->kept[0]));
	dd->nkept--;
}

static void diff_do_report(struct diff_stream *st, const struct diff_op *op)
{
	struct diff_dev *dd = &st->ctx->devs[op->dev];
	struct diff_kept *k = NULL;
	struct iopf_fault evt;
	u8 expect, codes_ok;
	u64 id = ++st->next_id;
	unsigned int kept;
	int ret;

	/* What the accounting expects of the request. */
	if (!op->reaches) {
		expect = op->type == IOMMU_FAULT_PAGE_REQ;
		codes_ok = IOPF_H_INVALID;
	} else if (!op->last) {
		expect = 0;
		codes_ok = 0;
	} else {
		expect = 1;
		switch (op->mode) {
		case IOPF_H_FAIL:
			codes_ok = IOPF_H_FAILURE;
			break;
		case IOPF_H_KEEP:
			codes_ok = IOPF_H_OK | IOPF_H_INVALID | IOPF_H_FAILURE;
			break;
		default:
			codes_ok = BIT(op->code);
		}
	}
	evt = iopf_h_fault(st->ctx->h, op->pasid, op->pasid_valid, op->grpid,
			   op->last, IOPF_H_MODE(op->mode) |
			   IOPF_H_TAG_CODE(op->code), expect, codes_ok);
	evt.fault.type = op->type;
	evt.fault.prm.perm = op->perm;
	evt.fault.prm.addr = id << PAGE_SHIFT;

	/* The model */
	if (op->reaches && !op->last) {
		dd->held[diff_grpid_index(op->grpid)]++;
		dd->nheld++;
	} else if (op->reaches) {
		dd->nheld -= dd->held[diff_grpid_index(op->grpid)];
		dd->held[diff_grpid_index(op->grpid)] = 0;
		if (op->mode == IOPF_H_KEEP) {
			k = &dd->kept[dd->nkept++];
			memset(k, 0, sizeof(*k));
			k->id = id;
			k->seq = iopf_h_seq(&evt.fault);
			k->grpid = op->grpid;
		}
	}

	ret = iommu_report_device_fault(dd->hd->dev, &evt);
	if (ret)
		diff_add(st->log, REC_RET, op->dev, OP_REPORT, ret, id, 0);
	if (ret != op->expect_ret)
		diff_anomaly(st, op, ANOMALY_RET, ret, id);
	if (op->reaches && op->last &&
	    (op->mode == IOPF_H_DEFER || op->mode == IOPF_H_HANDOFF)) {
		/* Deferred answers are part of this operation. */
		iopf_queue_flush_dev(dd->hd->dev);
		iopf_h_handoff_flush(st->ctx->h);
	}
	kept = diff_take_kept(dd, k);
	if (kept != !!k)
		diff_anomaly(st, op, ANOMALY_KEPT, kept, id);
	if (k && !k->group)
		dd->nkept--;
}

static void diff_do_attach(struct diff_stream *st, const struct diff_op *op,
			   bool attach)
{
	struct diff_dev *dd = &st->ctx->devs[op->dev];
	struct iommu_domain *domain = dd->dom[op->dom];
	struct iopf_h_handle *hh = &dd->handle[op->slot];
	struct device *dev = dd->hd->dev;
	u32 pasid = diff_slot_pasid[op->slot];
	int ret = 0;

	if (attach)
		ret = iopf_mock_attach_handle(domain, dev, pasid, &hh->handle);
	else
		iopf_mock_detach_handle(domain, dev, pasid);
	if (ret) {
		diff_add(st->log, REC_RET, op->dev, op->kind, ret, 0, 0);
		diff_anomaly(st, op, ANOMALY_RET, ret, 0);
	} else {
		dd->slot[op->slot] = attach ? op->dom : DOM_NONE;
	}
}

static void diff_do_remove(struct diff_stream *st, const struct diff_op *op)
{
	struct diff_dev *dd = &st->ctx->devs[op->dev];
	unsigned int i;

	iopf_queue_flush_dev(dd->hd->dev);
	iopf_queue_remove_device(diff_queue(st, dd->queue), dd->hd->dev);
	/* RULE_REMOVAL_FREES: the pending groups it answered are given up. */
	for (i = dd->nkept; i-- > 0;) {
		struct diff_kept *k = &dd->kept[i];

		if (k->dequeued || k->answered)
			continue;
		iopf_mock_release_removed_group(k->group);
		diff_drop_kept(dd, i);
	}
	dd->queue = -1;
	diff_clear_held(dd);
}

/* Runs one operation, and updates the model as the generator expects. */
static void diff_execute(struct diff_stream *st, const struct diff_op *op)
{
	struct diff_dev *dd = &st->ctx->devs[op->dev];
	struct diff_kept *k = NULL, saved;
	unsigned int i;
	int ret = 0;

	switch (op->kind) {
	case OP_REPORT:
		diff_do_report(st, op);
		break;
	case OP_ANSWER:
		k = &dd->kept[op->kept];
		iopf_group_response(k->group, op->code);
		break;
	case OP_DEQUEUE:
		k = &dd->kept[op->kept];
		iopf_group_dequeue(k->group);
		k->dequeued = true;
		break;
	case OP_FREE:
		k = &dd->kept[op->kept];
		saved = *k;
		iopf_free_group(k->group);
		diff_drop_kept(dd, op->kept);
		/* The normaliser reads what the model knows, not the group. */
		saved.group = NULL;
		k = &saved;
		break;
	case OP_FLUSH:
		ret = iopf_queue_flush_dev(dd->hd->dev);
		break;
	case OP_DISCARD:
		ret = iopf_queue_discard_partial(diff_queue(st, op->queue));
		for (i = 0; i < st->ndevs; i++) {
			struct diff_dev *d = &st->ctx->devs[st->first_dev + i];

			if (d->queue == op->queue)
				diff_clear_held(d);
		}
		break;
	case OP_REMOVE:
		diff_do_remove(st, op);
		break;
	case OP_ADD:
		ret = iopf_queue_add_device(diff_queue(st, op->queue),
					    dd->hd->dev);
		if (!ret)
			dd->queue = op->queue;
		break;
	case OP_ATTACH:
	case OP_DETACH:
		diff_do_attach(st, op, op->kind == OP_ATTACH);
		break;
	}
	if (ret)
		diff_add(st->log, REC_RET, op->dev, op->kind, ret, 0, 0);
	diff_end_op(st, op, k);
	if (op->kind == OP_ANSWER)
		k->answered = true;
}

static void diff_print_op(struct diff_stream *st, const struct diff_op *op)
{
	pr_info("# iopf_diff_line: mode=%s seed=%llu dev=%d op=%u do %s dev=%u q=%u slot=%u dom=%u pv=%d pasid=%#x grpid=%#x last=%d type=%u perm=%#x mode=%s code=%u kept=%u\n",
		st->mode, st->seed, st->dump_dev, st->done,
		diff_kind_name[op->kind], op->dev, op->queue, op->slot, op->dom,
		op->pasid_valid, op->pasid, op->grpid, op->last, op->type,
		op->perm, diff_mode_name[op->mode], op->code, op->kept);
	diff_printed(st);
}

/* Runs a whole stream, then drains it; returns its digest. */
static void diff_run(struct diff_stream *st)
{
	struct diff_op op;

	st->rng = st->rng_seed;
	st->log->digest = DIFF_HASH_INIT;
	st->log->records = 0;
	WRITE_ONCE(st->log->op, 0);
	while (st->done < st->ops || diff_generate_drain(st, &op)) {
		if (st->done < st->ops)
			diff_generate(st, &op);
		if (diff_dumping(st))
			diff_print_op(st, &op);
		diff_execute(st, &op);
		cond_resched();
	}
	pr_info("# iopf_diff: mode=%s seed=%llu dev=%d ops=%u done=%u records=%llu digest=%016llx end\n",
		st->mode, st->seed, st->dump_dev, st->ops, st->done,
		st->log->records, st->log->digest);
	pr_flush(1000, true);
}

/* Setup */

static void diff_print_rules(struct kunit *test)
{
	unsigned int i;

	for (i = 1; i < RULE_NR; i++)
		kunit_info(test, "# iopf_diff: normalised %s: %s; %s\n",
			   diff_rules[i].name, diff_rules[i].differs,
			   diff_rules[i].normalised);
}

/*
 * Two mock IOMMUs, one with a user-managed PASID table, two devices each;
 * two queues; per mock a domain of each kind; the handles of every slot.
 */
static struct diff_ctx *diff_setup(struct kunit *test, unsigned int max_seq)
{
	static const struct { unsigned int type; bool handler; } kinds[DOM_NR] = {
		[DOM_HANDLER] = { IOMMU_DOMAIN_UNMANAGED, true },
		[DOM_HANDLER_NESTED] = { IOMMU_DOMAIN_NESTED, true },
		[DOM_NO_HANDLER] = { IOMMU_DOMAIN_UNMANAGED, false },
		[DOM_NO_HANDLER_NESTED] = { IOMMU_DOMAIN_NESTED, false },
	};
	struct iopf_h_opts opts = {
		.ndevs = DIFF_DEVS / 2,
		.max_seq = max_seq,
		.handoff = true,
	};
	struct diff_ctx *ctx;
	unsigned int i, m, s;

	ctx = kunit_kzalloc(test, sizeof(*ctx), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, ctx);
	ctx->test = test;
	ctx->start = ktime_get();
	ctx->h = iopf_h_create(test, &opts);
	ctx->mock[0] = ctx->h->mock;
	ctx->mock[1] = iopf_mock_iommu_create(test, IOPF_MOCK_USER_PASID_TABLE,
					      ctx->h->log);
	iopf_h_set_tap(ctx->h, ctx->mock[1]);
	for (i = DIFF_DEVS / 2; i < DIFF_DEVS; i++)
		iopf_h_add_dev(ctx->h, ctx->mock[1]);
	ctx->queue[0] = ctx->h->queue;
	ctx->queue[1] = iopf_h_queue_alloc(test, "iopf-diff");
	for (m = 0; m < 2; m++)
		for (i = 1; i < DOM_NR; i++)
			ctx->dom[m][i] =
				iopf_mock_domain_alloc(test, ctx->mock[m],
						       kinds[i].type,
						       kinds[i].handler ?
						       iopf_h_handler : NULL);

	for (i = 0; i < DIFF_DEVS; i++) {
		struct diff_dev *dd = &ctx->devs[i];

		dd->index = i;
		dd->hd = &ctx->h->devs[i];
		dd->user_pasid_table = i >= DIFF_DEVS / 2;
		dd->dom = ctx->dom[dd->user_pasid_table];
		dd->queue = -1;
		for (s = 0; s < DIFF_SLOTS; s++) {
			iopf_h_handle_init(ctx->h, &dd->handle[s], dd->hd,
					   IOPF_H_ANSWER);
			/*
			 * Partials of several PASIDs join one group, which
			 * iopf_h_group_ok() would refuse; the records compare
			 * the groups' requests instead.
			 */
			dd->handle[s].record = false;
		}
	}
	ctx->h->observer = ctx;
	ctx->h->on_group = diff_on_group;
	ctx->h->on_response = diff_on_response;
	return ctx;
}

static struct diff_log *diff_log_alloc(struct kunit *test)
{
	struct diff_log *log = kunit_kzalloc(test, sizeof(*log), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, log);
	spin_lock_init(&log->lock);
	return log;
}

/* The streams' checks, once they are all drained. */
static void diff_check(struct kunit *test, struct diff_ctx *ctx,
		       const char *mode, unsigned int streams, u64 ops,
		       u64 records, u64 anomalies, u64 documented)
{
	u64 ms = ktime_ms_delta(ktime_get(), ctx->start);
	unsigned int i, s;

	kunit_info(test, "# iopf_diff: case=%s mode=%s seeds=%u ops=%llu records=%llu documented=%llu anomalies=%llu lost=%llu duplicated=%llu ms=%llu\n",
		   test->name, mode, streams, ops, records, documented, anomalies,
		   ctx->tally.lost, ctx->tally.duplicated, ms);
	KUNIT_EXPECT_EQ_MSG(test, anomalies, 0,
			    "operations whose outcome the model did not expect (ANOMALY records)");
	iopf_h_expect_tally(test, &ctx->tally);
	for (i = 0; i < DIFF_DEVS; i++) {
		struct diff_dev *dd = &ctx->devs[i];

		KUNIT_EXPECT_EQ(test, dd->nkept, 0);
		KUNIT_EXPECT_EQ(test, dd->queue, -1);
		for (s = 0; s < DIFF_SLOTS; s++)
			KUNIT_EXPECT_EQ(test, dd->slot[s], DOM_NONE);
	}
}

/* The regression seeds of a mode, then that many random ones. */
struct diff_seed {
	u8 mode;
	u64 seed;
	unsigned int ops;
};

enum { DIFF_seq, DIFF_conc };

#define IOPF_DIFF_SEED(m, s, n) { DIFF_##m, s, n },
static const struct diff_seed diff_regression[] = {
#include "iopf_diff_seeds.h"
	{ 0xff, 0, 0 },
};

/* diff_replay, parsed: MODE:SEED:OPS:FROM:TO:DEV. */
struct diff_replay_req {
	char mode[8];
	u64 seed;
	unsigned int ops;
	unsigned int from;
	unsigned int to;
	int dev;
};

static bool diff_parse_replay(struct diff_replay_req *r)
{
	if (!diff_replay || !*diff_replay)
		return false;
	return sscanf(diff_replay, "%7[^:]:%llu:%u:%u:%u:%d", r->mode,
		      &r->seed, &r->ops, &r->from, &r->to, &r->dev) == 6;
}

/*
 * Stream @i of a mode: its regression seeds first, then @random random
 * ones of @random_ops operations, or the one replayed.
 */
static bool diff_nth(unsigned int i, u8 mode, unsigned int random,
		     unsigned int random_ops, const struct diff_replay_req *rp,
		     u64 *seed, unsigned int *ops)
{
	unsigned int j;
	u64 s;

	if (rp) {
		*seed = rp->seed;
		*ops = rp->ops;
		return !i;
	}
	for (j = 0; diff_regression[j].mode != 0xff; j++) {
		if (diff_regression[j].mode == mode && !i--) {
			*seed = diff_regression[j].seed;
			*ops = diff_regression[j].ops;
			return true;
		}
	}
	if (i >= random)
		return false;
	s = diff_seed * 2 + mode + ((u64)i << 32);
	*seed = diff_next(&s);
	*ops = random_ops;
	return true;
}

/* The longest stream of a mode, for the accounting. */
static unsigned int diff_max_ops(u8 mode, unsigned int random_ops,
				 const struct diff_replay_req *rp)
{
	unsigned int j, n = rp ? rp->ops : random_ops;

	for (j = 0; !rp && diff_regression[j].mode != 0xff; j++)
		if (diff_regression[j].mode == mode)
			n = max(n, diff_regression[j].ops);
	return n;
}

/* Cases */

/*
 * Streams on four devices (two of them behind an IOMMU with a user-managed
 * PASID table) and two queues, one at a time, with one log for all.
 */
static void iopf_diff_sequential(struct kunit *test)
{
	u64 ops = 0, records = 0, anomalies = 0, documented = 0;
	struct diff_replay_req replay, *rp = NULL;
	unsigned int i, nops;
	struct diff_stream *st;
	struct diff_ctx *ctx;
	struct diff_log *log;
	u64 seed;

	if (diff_parse_replay(&replay)) {
		if (strcmp(replay.mode, "seq"))
			kunit_skip(test, "replaying a concurrent stream");
		rp = &replay;
	}
	/* Every request of a stream is accounted: at most one per operation. */
	ctx = diff_setup(test, diff_max_ops(DIFF_seq, diff_ops, rp) + 1);
	log = diff_log_alloc(test);
	st = kunit_kzalloc(test, sizeof(*st), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, st);
	for (i = 0; i < DIFF_DEVS; i++)
		ctx->devs[i].log = log;
	diff_print_rules(test);

	for (i = 0; diff_nth(i, DIFF_seq, diff_seeds, diff_ops, rp, &seed,
			     &nops); i++) {
		memset(st, 0, sizeof(*st));
		st->ctx = ctx;
		st->seed = seed;
		st->rng_seed = seed;
		st->ops = nops;
		st->ndevs = DIFF_DEVS;
		st->log = log;
		st->mode = "seq";
		st->dump_dev = -1;
		st->dump = rp;
		st->dump_from = rp ? rp->from : 0;
		st->dump_to = rp ? rp->to : 0;
		diff_run(st);
		iopf_h_tally(ctx->h, &ctx->tally);
		iopf_h_account_reset(ctx->h);
		ops += st->done;
		records += log->records;
		anomalies += st->anomalies;
		documented += st->documented;
	}
	diff_check(test, ctx, "seq", i, ops, records, anomalies, documented);
}

static int diff_thread_fn(void *data)
{
	diff_run(data);
	return 0;
}

/*
 * DIFF_CONC_THREADS streams at once, each on a device of its own, all on
 * one queue; each device's log is compared on its own.
 */
static void iopf_diff_concurrent(struct kunit *test)
{
	u64 ops = 0, records = 0, anomalies = 0, documented = 0;
	struct diff_stream *st[DIFF_CONC_THREADS];
	struct diff_replay_req replay, *rp = NULL;
	struct iopf_h_threads *threads;
	unsigned int i, t, nops;
	struct diff_ctx *ctx;
	u64 seed;

	if (diff_parse_replay(&replay)) {
		if (strcmp(replay.mode, "conc"))
			kunit_skip(test, "replaying a sequential stream");
		rp = &replay;
	}
	ctx = diff_setup(test, DIFF_CONC_THREADS *
			 (diff_max_ops(DIFF_conc, diff_conc_ops, rp) + 1) + 1);
	threads = kunit_kzalloc(test, sizeof(*threads), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, threads);
	for (t = 0; t < DIFF_CONC_THREADS; t++) {
		st[t] = kunit_kzalloc(test, sizeof(*st[t]), GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, st[t]);
		ctx->devs[t].log = diff_log_alloc(test);
	}

	for (i = 0; diff_nth(i, DIFF_conc, diff_conc_seeds, diff_conc_ops, rp,
			     &seed, &nops); i++) {
		memset(threads, 0, sizeof(*threads));
		for (t = 0; t < DIFF_CONC_THREADS; t++) {
			u64 s = seed + t;

			memset(st[t], 0, sizeof(*st[t]));
			st[t]->ctx = ctx;
			st[t]->seed = seed;
			st[t]->rng_seed = diff_next(&s);
			st[t]->ops = nops;
			st[t]->first_dev = t;
			st[t]->ndevs = 1;
			st[t]->log = ctx->devs[t].log;
			st[t]->mode = "conc";
			st[t]->dump_dev = t;
			st[t]->dump = rp && rp->dev == t;
			st[t]->dump_from = rp ? rp->from : 0;
			st[t]->dump_to = rp ? rp->to : 0;
			if (!iopf_h_thread_start(threads, diff_thread_fn, st[t],
						 "iopf_diff", t))
				break;
		}
		/* No assertion may end the test while the threads run. */
		iopf_h_threads_wait(threads);
		KUNIT_ASSERT_EQ(test, threads->started, DIFF_CONC_THREADS);
		iopf_h_tally(ctx->h, &ctx->tally);
		iopf_h_account_reset(ctx->h);
		for (t = 0; t < DIFF_CONC_THREADS; t++) {
			ops += st[t]->done;
			records += st[t]->log->records;
			anomalies += st[t]->anomalies;
			documented += st[t]->documented;
		}
	}
	diff_check(test, ctx, "conc", i, ops, records, anomalies, documented);
}

static struct kunit_case iopf_diff_cases[] = {
	KUNIT_CASE_SLOW(iopf_diff_sequential),
	KUNIT_CASE_SLOW(iopf_diff_concurrent),
	{}
};

static struct kunit_suite iopf_diff_suite = {
	.name = "iopf_diff",
	.test_cases = iopf_diff_cases,
};

kunit_test_suite(iopf_diff_suite);
