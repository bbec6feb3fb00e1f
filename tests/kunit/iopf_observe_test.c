// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit suite of the Rust IOPF core's observability (suite iopf_observe):
 * its trace events (iopf_trace.h) and its debugfs files,
 * /sys/kernel/debug/iopf/<queue>/<device>/{stats,latency}. io-pgfault.c
 * has neither, so the suite is built with CONFIG_IOMMU_IOPF_RUST only.
 *
 * Each case reports page requests on a device of the mock IOMMU, counts the
 * events with probes on the tracepoints, and reads the files through a
 * kernel mount of debugfs, as user space would. Both must agree with what
 * the mock's page_response op recorded.
 */
#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/iommu.h>
#include <linux/kthread.h>
#include <linux/mman.h>
#include <linux/mount.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "../../iopf_trace.h"
#include "iopf_mock_iommu.h"

#define OBS_QUEUE		"iopf-observe"
#define OBS_LOG_SIZE		64
#define OBS_CODES		(IOMMU_PAGE_RESP_FAILURE + 1)
#define OBS_REASONS		(IOPF_ABORT_INCOMPLETE + 1)
#define OBS_MAX_KEPT		4
#define OBS_FILE_SIZE		1024
#define OBS_PATH_SIZE		128
#define OBS_CHURN		50

/* What the fault handler does with a group, by its grpid. */
enum obs_action {
	OBS_ANSWER_SUCCESS,
	OBS_ANSWER_INVALID,
	OBS_FAIL,
	/* kept by the handler, dequeued: removing the device leaves it be */
	OBS_KEEP,
	/* kept by the handler on the device's pending list */
	OBS_KEEP_PENDING,
};

/* What the probes saw of one device's events. */
struct obs_counts {
	unsigned int report, report_last, hold, drop, handle, handle_failed;
	unsigned int answer[OBS_CODES], abort[OBS_REASONS];
	u32 last_held, drop_grpid, drop_count;
};

/* The events of the device under test. */
struct obs_events {
	struct device *dev;
	/* protects n: trace probes run on any CPU */
	spinlock_t lock;
	struct obs_counts n;
};

struct obs_handle {
	struct iommu_attach_handle handle;
	enum obs_action (*action)(u32 grpid);
	unsigned int delivered;
	unsigned int nkept;
	struct iopf_group *kept[OBS_MAX_KEPT];
};

struct obs_env {
	struct iopf_mock_log *log;
	struct iopf_mock_iommu *mock;
	struct iopf_queue *queue;
	struct device *dev;
	struct obs_handle h;
	struct obs_events ev;
	bool on_queue;
	unsigned int reported;
	/* A user buffer of the test's, to read files through. */
	unsigned long ubuf;
	struct completion churned;
};

static struct obs_events *obs_probed;
static DEFINE_SPINLOCK(obs_probed_lock);

/* The events of the device under test, or NULL. */
static struct obs_events *obs_events_of(struct device *dev)
{
	struct obs_events *ev;

	spin_lock(&obs_probed_lock);
	ev = obs_probed && obs_probed->dev == dev ? obs_probed : NULL;
	if (ev)
		spin_lock(&ev->lock);
	spin_unlock(&obs_probed_lock);
	return ev;
}

static void obs_probe_report(void *data, struct device *dev, u32 pasid,
			     u32 grpid, u32 flags, u32 perm, u64 addr)
{
	struct obs_events *ev = obs_events_of(dev);

	if (!ev)
		return;
	ev->n.report++;
	if (flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)
		ev->n.report_last++;
	spin_unlock(&ev->lock);
}

static void obs_probe_hold(void *data, struct device *dev, u32 pasid,
			   u32 grpid, u32 held)
{
	struct obs_events *ev = obs_events_of(dev);

	if (!ev)
		return;
	ev->n.hold++;
	ev->n.last_held = held;
	spin_unlock(&ev->lock);
}

static void obs_probe_drop(void *data, struct device *dev, u32 grpid,
			   u32 count, u32 held)
{
	struct obs_events *ev = obs_events_of(dev);

	if (!ev)
		return;
	ev->n.drop++;
	ev->n.drop_grpid = grpid;
	ev->n.drop_count = count;
	spin_unlock(&ev->lock);
}

static void obs_probe_handle(void *data, struct device *dev, u32 pasid,
			     u32 grpid, u32 faults, int ret)
{
	struct obs_events *ev = obs_events_of(dev);

	if (!ev)
		return;
	ev->n.handle++;
	if (ret)
		ev->n.handle_failed++;
	spin_unlock(&ev->lock);
}

static void obs_probe_answer(void *data, struct device *dev, u32 pasid,
			     u32 grpid, u32 code, u32 latency_us)
{
	struct obs_events *ev = obs_events_of(dev);

	if (!ev)
		return;
	if (code < OBS_CODES)
		ev->n.answer[code]++;
	spin_unlock(&ev->lock);
}

static void obs_probe_abort(void *data, struct device *dev, u32 pasid,
			    u32 grpid, u32 reason)
{
	struct obs_events *ev = obs_events_of(dev);

	if (!ev)
		return;
	if (reason < OBS_REASONS)
		ev->n.abort[reason]++;
	spin_unlock(&ev->lock);
}

static void obs_unregister_probes(void *data)
{
	unregister_trace_iopf_abort(obs_probe_abort, NULL);
	unregister_trace_iopf_answer(obs_probe_answer, NULL);
	unregister_trace_iopf_handle(obs_probe_handle, NULL);
	unregister_trace_iopf_drop(obs_probe_drop, NULL);
	unregister_trace_iopf_hold(obs_probe_hold, NULL);
	unregister_trace_iopf_report(obs_probe_report, NULL);
	tracepoint_synchronize_unregister();
	spin_lock(&obs_probed_lock);
	obs_probed = NULL;
	spin_unlock(&obs_probed_lock);
}

/* Counts the events of @ev->dev until the test ends. */
static void obs_register_probes(struct kunit *test, struct obs_events *ev)
{
	spin_lock_init(&ev->lock);
	spin_lock(&obs_probed_lock);
	obs_probed = ev;
	spin_unlock(&obs_probed_lock);
	KUNIT_ASSERT_EQ(test, register_trace_iopf_report(obs_probe_report, NULL), 0);
	KUNIT_ASSERT_EQ(test, register_trace_iopf_hold(obs_probe_hold, NULL), 0);
	KUNIT_ASSERT_EQ(test, register_trace_iopf_drop(obs_probe_drop, NULL), 0);
	KUNIT_ASSERT_EQ(test, register_trace_iopf_handle(obs_probe_handle, NULL), 0);
	KUNIT_ASSERT_EQ(test, register_trace_iopf_answer(obs_probe_answer, NULL), 0);
	KUNIT_ASSERT_EQ(test, register_trace_iopf_abort(obs_probe_abort, NULL), 0);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, obs_unregister_probes,
							NULL), 0);
}

/* A copy of what the probes saw of @ev's device, taken under their lock. */
static struct obs_counts obs_events_copy(struct obs_events *ev)
{
	struct obs_counts copy;

	spin_lock(&ev->lock);
	copy = ev->n;
	spin_unlock(&ev->lock);
	return copy;
}

/* Files */

/*
 * Reads debugfs file @path (relative to the debugfs root) into @buf, NUL
 * terminated, as user space would: through a user buffer of the test, @ubuf
 * (the files have no read_iter, so kernel_read() cannot read them). Returns
 * the length read or a negative error.
 */
static ssize_t obs_read(unsigned long ubuf, const char *path, char *buf,
			size_t size)
{
	struct file_system_type *type = get_fs_type("debugfs");
	char __user *user = (char __user *)ubuf;
	struct vfsmount *mnt;
	struct file *file;
	loff_t pos = 0;
	ssize_t len = 0, n;

	if (!type)
		return -ENODEV;
	mnt = kern_mount(type);
	put_filesystem(type);
	if (IS_ERR(mnt))
		return PTR_ERR(mnt);
	file = file_open_root_mnt(mnt, path, O_RDONLY, 0);
	if (IS_ERR(file)) {
		kern_unmount(mnt);
		return PTR_ERR(file);
	}
	while ((n = vfs_read(file, user + len, size - 1 - len, &pos)) > 0)
		len += n;
	fput(file);
	kern_unmount(mnt);
	if (n < 0)
		return n;
	if (copy_from_user(buf, user, len))
		return -EFAULT;
	buf[len] = '\0';
	return len;
}

/* The path of @dev's file @name. */
static char *obs_path(struct kunit *test, struct device *dev, const char *name)
{
	char *path = kunit_kzalloc(test, OBS_PATH_SIZE, GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, path);
	snprintf(path, OBS_PATH_SIZE, "iopf/%s/%s/%s", OBS_QUEUE, dev_name(dev),
		 name);
	return path;
}

/* The line after @line, or NULL at the end of the text. */
static const char *obs_next_line(const char *line)
{
	line = strchr(line, '\n');
	return line && line[1] ? line + 1 : NULL;
}

/* Counter @key of @text, a stats file ("name value" lines), or -1. */
static long long obs_stat(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *line;
	long long value;

	for (line = text; line; line = obs_next_line(line)) {
		if (!strncmp(line, key, klen) && line[klen] == ' ' &&
		    sscanf(line + klen + 1, "%lld", &value) == 1)
			return value;
	}
	return -1;
}

/* The groups counted by the latency file @text: the sum of its buckets. */
static long long obs_timed(const char *text)
{
	const char *line;
	long long sum = 0, count;
	char bucket[32];

	for (line = text; line; line = obs_next_line(line)) {
		if (*line == '#')
			continue;
		if (sscanf(line, "%31s %lld", bucket, &count) != 2)
			return -1;
		sum += count;
	}
	return sum;
}

/* Reads file @name of @env's device into a new buffer, asserting it could. */
static char *obs_read_file(struct kunit *test, struct obs_env *env,
			   const char *name)
{
	char *buf = kunit_kzalloc(test, OBS_FILE_SIZE, GFP_KERNEL);
	const char *path = obs_path(test, env->dev, name);
	ssize_t len;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	len = obs_read(env->ubuf, path, buf, OBS_FILE_SIZE);
	KUNIT_ASSERT_GT_MSG(test, len, 0, "reading %s", path);
	return buf;
}

/* Handler */

static enum obs_action obs_by_grpid(u32 grpid)
{
	switch (grpid) {
	case 2:
		return OBS_ANSWER_INVALID;
	case 3:
		return OBS_FAIL;
	case 4:
		return OBS_KEEP;
	case 8:
		return OBS_KEEP_PENDING;
	default:
		return OBS_ANSWER_SUCCESS;
	}
}

static int obs_handler(struct iopf_group *group)
{
	struct obs_handle *h = container_of(group->attach_handle,
					    struct obs_handle, handle);

	h->delivered++;
	switch (h->action(group->last_fault.fault.prm.grpid)) {
	case OBS_ANSWER_SUCCESS:
		iopf_group_response(group, IOMMU_PAGE_RESP_SUCCESS);
		break;
	case OBS_ANSWER_INVALID:
		iopf_group_response(group, IOMMU_PAGE_RESP_INVALID);
		break;
	case OBS_FAIL:
		return -EIO;
	case OBS_KEEP:
	case OBS_KEEP_PENDING:
		if (h->nkept == OBS_MAX_KEPT)
			return -ENOSPC;
		if (h->action(group->last_fault.fault.prm.grpid) == OBS_KEEP)
			iopf_group_dequeue(group);
		h->kept[h->nkept++] = group;
		return 0;
	}
	iopf_free_group(group);
	return 0;
}

/* Setup */

KUNIT_DEFINE_ACTION_WRAPPER(obs_queue_free, iopf_queue_free,
			    struct iopf_queue *);

/*
 * Takes the device off its queue, and gives up the groups its handler kept,
 * which the removal answered.
 */
static void obs_remove(void *data)
{
	struct obs_env *env = data;
	unsigned int i;

	if (env->on_queue)
		iopf_queue_remove_device(env->queue, env->dev);
	env->on_queue = false;
	for (i = 0; i < env->h.nkept; i++)
		iopf_mock_release_removed_group(env->h.kept[i]);
	env->h.nkept = 0;
}

/*
 * A device of the mock on queue OBS_QUEUE, its RID attached to a domain whose
 * handler acts by grpid (obs_by_grpid()), and probes on its events.
 */
static struct obs_env *obs_setup(struct kunit *test)
{
	struct iommu_domain *domain;
	struct obs_env *env;

	if (!IS_ENABLED(CONFIG_TRACEPOINTS))
		kunit_skip(test, "the kernel has no tracepoints");
	env = kunit_kzalloc(test, sizeof(*env), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, env);
	env->log = iopf_mock_log_alloc(test, OBS_LOG_SIZE);
	env->mock = iopf_mock_iommu_create(test, 0, env->log);
	env->dev = iopf_mock_dev_create(test, env->mock);
	env->queue = iopf_queue_alloc(OBS_QUEUE);
	KUNIT_ASSERT_NOT_NULL(test, env->queue);
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, obs_queue_free,
							env->queue), 0);
	env->h.action = obs_by_grpid;
	domain = iopf_mock_domain_alloc(test, env->mock, IOMMU_DOMAIN_UNMANAGED,
					obs_handler);
	iopf_mock_attach_rid(test, domain, env->dev, &env->h.handle);
	KUNIT_ASSERT_EQ(test, iopf_queue_add_device(env->queue, env->dev), 0);
	env->on_queue = true;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, obs_remove, env), 0);
	env->ev.dev = env->dev;
	obs_register_probes(test, &env->ev);
	env->ubuf = kunit_vm_mmap(test, NULL, 0, PAGE_SIZE,
				  PROT_READ | PROT_WRITE,
				  MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE_MSG(test, env->ubuf, 0, "no user buffer");
	return env;
}

/* Reports a page request of group @grpid on the RID (or @pasid, if not 0). */
static int obs_report(struct obs_env *env, u32 pasid, u32 grpid, bool last)
{
	struct iopf_fault evt = {};

	evt.fault.type = IOMMU_FAULT_PAGE_REQ;
	evt.fault.prm.grpid = grpid;
	evt.fault.prm.perm = IOMMU_FAULT_PERM_READ;
	evt.fault.prm.addr = 0x100000 + env->reported * PAGE_SIZE;
	if (last)
		evt.fault.prm.flags |= IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
	if (pasid) {
		evt.fault.prm.pasid = pasid;
		evt.fault.prm.flags |= IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
	}
	env->reported++;
	return iommu_report_device_fault(env->dev, &evt);
}

/* Responses of the mock's log with @code. */
static unsigned int obs_logged(struct obs_env *env, u32 code)
{
	unsigned int i, n = 0;
	struct iopf_mock_resp r;

	for (i = 0; iopf_mock_log_get(env->log, i, &r); i++)
		n += r.msg.code == code;
	return n;
}

/* Cases */

/*
 * Groups answered each way, a failing handler, a kept group, a held partial
 * and a request no handler takes: the stats file, the latency file and the
 * events agree with the mock's record.
 */
static void iopf_observe_counters_match_the_mock(struct kunit *test)
{
	struct obs_env *env = obs_setup(test);
	struct obs_counts ev;
	unsigned int code;
	char *stats;

	/* Group 1: two partials and the last, answered SUCCESS. */
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 1, false), 0);
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 1, false), 0);
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 1, true), 0);
	/* Group 2 answered INVALID, 3 failed by its handler, 4 kept. */
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 2, true), 0);
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 3, true), 0);
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 4, true), 0);
	/* A partial of group 5, held; a PASID with no domain: INVALID. */
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 5, false), 0);
	KUNIT_EXPECT_LT(test, obs_report(env, 7, 6, true), 0);

	KUNIT_ASSERT_EQ(test, env->h.delivered, 4);
	KUNIT_ASSERT_EQ(test, env->h.nkept, 1);
	KUNIT_ASSERT_EQ(test, iopf_mock_log_count(env->log), 4);

	stats = obs_read_file(test, env, "stats");
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "requests"), env->reported);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "groups"), env->h.delivered);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "responses_success"),
			obs_logged(env, IOMMU_PAGE_RESP_SUCCESS));
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "responses_invalid"),
			obs_logged(env, IOMMU_PAGE_RESP_INVALID));
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "responses_failure"),
			obs_logged(env, IOMMU_PAGE_RESP_FAILURE));
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "responses_other"), 0);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "partials_held"), 1);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "partials_held_max"), 2);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "partials_dropped"), 0);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "groups_pending"), 1);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "handler_failures"), 1);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "alloc_failures"), 0);

	/* The kept group answered: nothing pending, and its answer counted. */
	iopf_group_response(env->h.kept[0], IOMMU_PAGE_RESP_SUCCESS);
	iopf_free_group(env->h.kept[0]);
	env->h.nkept = 0;
	stats = obs_read_file(test, env, "stats");
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "groups_pending"), 0);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "responses_success"),
			obs_logged(env, IOMMU_PAGE_RESP_SUCCESS));
	/* While iopf_answer has a probe, every group handed over is timed. */
	KUNIT_EXPECT_EQ(test, obs_timed(obs_read_file(test, env, "latency")),
			env->h.delivered);

	ev = obs_events_copy(&env->ev);
	KUNIT_EXPECT_EQ(test, ev.report, env->reported);
	KUNIT_EXPECT_EQ(test, ev.report_last, 5);
	KUNIT_EXPECT_EQ(test, ev.hold, 3);
	KUNIT_EXPECT_EQ(test, ev.last_held, 1);
	KUNIT_EXPECT_EQ(test, ev.drop, 0);
	KUNIT_EXPECT_EQ(test, ev.handle, env->h.delivered);
	KUNIT_EXPECT_EQ(test, ev.handle_failed, 1);
	for (code = 0; code < OBS_CODES; code++)
		KUNIT_EXPECT_EQ_MSG(test, ev.answer[code], obs_logged(env, code),
				    "answers with code %u", code);
	KUNIT_EXPECT_EQ(test, ev.abort[IOPF_ABORT_HANDLER], 1);
	KUNIT_EXPECT_EQ(test, ev.abort[IOPF_ABORT_REMOVED], 0);
}

/*
 * A group past the bound on held partials is dropped whole and its last
 * request answered INVALID; a group pending when its device leaves the queue
 * is answered INVALID. Both are counted and traced as aborts.
 */
static void iopf_observe_drop_and_removal(struct kunit *test)
{
	const unsigned int bound = CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL;
	struct obs_env *env = obs_setup(test);
	struct obs_counts ev;
	unsigned int i;
	char *stats;

	for (i = 0; i <= bound; i++)
		KUNIT_ASSERT_EQ(test, obs_report(env, 0, 9, false), 0);
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 9, true), 0);
	KUNIT_EXPECT_EQ(test, env->h.delivered, 0);
	KUNIT_EXPECT_EQ(test, obs_logged(env, IOMMU_PAGE_RESP_INVALID), 1);

	stats = obs_read_file(test, env, "stats");
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "requests"), env->reported);
	/* The bound's partials and the one that went past it. */
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "partials_dropped"), bound + 1);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "partials_held"), 0);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "partials_held_max"), bound);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "responses_invalid"), 1);
	KUNIT_EXPECT_EQ(test, obs_stat(stats, "groups"), 0);

	/* Group 8 is kept; the device leaves the queue with it pending. */
	KUNIT_EXPECT_EQ(test, obs_report(env, 0, 8, true), 0);
	KUNIT_ASSERT_EQ(test, env->h.nkept, 1);
	kunit_release_action(test, obs_remove, env);
	KUNIT_EXPECT_EQ(test, obs_logged(env, IOMMU_PAGE_RESP_INVALID), 2);
	/* Its files went with it. */
	stats = kunit_kzalloc(test, OBS_FILE_SIZE, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, stats);
	KUNIT_EXPECT_EQ(test, obs_read(env->ubuf, obs_path(test, env->dev, "stats"),
				       stats, OBS_FILE_SIZE), -ENOENT);

	ev = obs_events_copy(&env->ev);
	KUNIT_EXPECT_EQ(test, ev.report, env->reported);
	KUNIT_EXPECT_EQ(test, ev.hold, bound);
	KUNIT_EXPECT_EQ(test, ev.last_held, bound);
	KUNIT_EXPECT_EQ(test, ev.drop, 1);
	KUNIT_EXPECT_EQ(test, ev.drop_grpid, 9);
	KUNIT_EXPECT_EQ(test, ev.drop_count, bound + 1);
	KUNIT_EXPECT_EQ(test, ev.abort[IOPF_ABORT_INCOMPLETE], 1);
	KUNIT_EXPECT_EQ(test, ev.abort[IOPF_ABORT_REMOVED], 1);
	KUNIT_EXPECT_EQ(test, ev.answer[IOMMU_PAGE_RESP_INVALID], 2);
	KUNIT_EXPECT_EQ(test, ev.handle, 1);
}

/* Takes the device off its queue and back, 50 times, with a group each time. */
static int obs_churn(void *data)
{
	struct obs_env *env = data;
	unsigned int i;

	for (i = 0; i < OBS_CHURN; i++) {
		if (obs_report(env, 0, 1, true))
			break;
		iopf_queue_remove_device(env->queue, env->dev);
		env->on_queue = false;
		usleep_range(100, 200);
		if (iopf_queue_add_device(env->queue, env->dev))
			break;
		env->on_queue = true;
		usleep_range(100, 200);
	}
	complete(&env->churned);
	return 0;
}

/*
 * Reads of a device's stats file while the device leaves its queue and joins
 * it again: each read sees the whole file, or no file (-ENOENT when it is
 * opened, -EIO when it went while open).
 */
static void iopf_observe_read_while_devices_come_and_go(struct kunit *test)
{
	struct obs_env *env = obs_setup(test);
	const char *path = obs_path(test, env->dev, "stats");
	char *buf = kunit_kzalloc(test, OBS_FILE_SIZE, GFP_KERNEL);
	unsigned int reads = 0, gone = 0, bad = 0;
	ssize_t bad_len = 0;
	struct task_struct *thread;
	ssize_t len;

	KUNIT_ASSERT_NOT_NULL(test, buf);
	/* On the queue, before and after the churn: the whole file. */
	KUNIT_EXPECT_GT(test, obs_read(env->ubuf, path, buf, OBS_FILE_SIZE), 0);
	KUNIT_EXPECT_GE(test, obs_stat(buf, "alloc_failures"), 0);
	init_completion(&env->churned);
	thread = kthread_run(obs_churn, env, "iopf-observe-churn");
	KUNIT_ASSERT_FALSE(test, IS_ERR(thread));
	while (!completion_done(&env->churned)) {
		len = obs_read(env->ubuf, path, buf, OBS_FILE_SIZE);
		/* No file at open, or the file went while open (debugfs). */
		if (len == -ENOENT || len == -EIO)
			gone++;
		else if (len <= 0 || obs_stat(buf, "alloc_failures") < 0)
			bad++, bad_len = len;
		else
			reads++;
		cond_resched();
	}
	wait_for_completion(&env->churned);
	KUNIT_EXPECT_EQ_MSG(test, bad, 0, "last bad read: %zd", bad_len);
	KUNIT_EXPECT_TRUE(test, env->on_queue);
	memset(buf, 0, OBS_FILE_SIZE);
	KUNIT_EXPECT_GT(test, obs_read(env->ubuf, path, buf, OBS_FILE_SIZE), 0);
	/* The device's statistics began again when it last joined. */
	KUNIT_EXPECT_EQ(test, obs_stat(buf, "requests"), 0);
	KUNIT_EXPECT_EQ(test, env->h.delivered, OBS_CHURN);
	KUNIT_EXPECT_EQ(test, obs_logged(env, IOMMU_PAGE_RESP_SUCCESS), OBS_CHURN);
	kunit_info(test, "%u whole reads, %u of no file", reads, gone);
}

static struct kunit_case iopf_observe_cases[] = {
	KUNIT_CASE(iopf_observe_counters_match_the_mock),
	KUNIT_CASE(iopf_observe_drop_and_removal),
	KUNIT_CASE_SLOW(iopf_observe_read_while_devices_come_and_go),
	{}
};

static struct kunit_suite iopf_observe_suite = {
	.name = "iopf_observe",
	.test_cases = iopf_observe_cases,
};

kunit_test_suite(iopf_observe_suite);
