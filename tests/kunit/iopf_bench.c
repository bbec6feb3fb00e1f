// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmark of the IOMMU I/O page fault framework: KUnit suite iopf_bench.
 *
 * Built with CONFIG_IOMMU_IOPF_BENCH. Its cases skip unless the kernel is
 * booted with iopf_bench=1, so that a test kernel which happens to build it
 * spends no time here; `cargo xtask bench` boots the bench kernels with
 * "iopf_bench=1 kunit.filter_glob=iopf_bench".
 *
 * Like the iopf suite, it only calls the public API of <linux/iommu.h>, on
 * devices of the mock IOMMU (iopf_mock_iommu.c): io-pgfault.c and the Rust
 * core (CONFIG_IOMMU_IOPF_RUST) are measured through the same calls, with
 * the same handlers. Speed is printed, never asserted; the cases only check
 * that every last-page request got exactly one response.
 *
 * Output: one KTAP diagnostic line per measurement,
 *
 *   # iopf_bench: scenario=S [PARAM=V ...] metric=M STAT=V [STAT=V ...]
 *
 * tokens separated by one space, values without spaces. The scenario and its
 * parameters, in the order printed, identify the measurement; M names the
 * quantity and the STATs give its values, as decimal numbers (a fraction
 * after a dot where needed):
 *
 *   metric=faults_per_s     value=  page requests (partial and last) per
 *                                   second of wall time
 *   metric=latency_ns,      samples= p50= p99= mean= min= max=, in ns:
 *   metric=last_page_ns     from just before iommu_report_device_fault() of
 *                           a last-page request to the return of
 *                           iopf_group_response() in the handler (or its
 *                           work item), which called the mock's page_response
 *   metric=partial_ns       same stats, for a partial request: the time
 *                           iommu_report_device_fault() takes to return
 *   metric=held_max         value=  partials the device can hold at the end
 *                                   of the hold phase: n, or the Rust bound
 *   metric=allocs           per=fault|partial|group allocs= frees=
 *                           alloc_bytes= freed_bytes=, averaged per unit,
 *                           counted by the slab tracepoints (see below)
 *
 * and one line "scenario=meta metric=build impl=c|rust max_partial=N ..."
 * describing the kernel (max_partial=0: no bound). Times come from
 * ktime_get_ns(). Under QEMU TCG they are emulated time: compare the two
 * implementations with each other, not with hardware.
 *
 * Allocations are counted by probes on the kmalloc, kmem_cache_alloc, kfree
 * and kmem_cache_free tracepoints, armed around the measured calls and
 * counting only what the benchmark's own task allocates or frees in task
 * context (not in interrupts, not in other threads), with the slab object
 * size (bytes_alloc, ksize()). Without CONFIG_TRACEPOINTS the allocation
 * lines are not printed.
 *
 * Scenarios:
 *
 *   fixed_cost       single-page groups on one device, the handler answers
 *                    and frees inline: the cost of the whole path
 *   group_size k=K groups=8
 *                    8 groups of K pages interleaved page by page, inline
 *                    answers; K = 1, 4, 16, 64
 *   held_partials layout=L n=N
 *                    N partials of other groups held on the device, then
 *                    2048 last-page requests of a single-page group timed
 *                    one by one; N = 0, 64, 512, 4096. The N partials are
 *                    held twice, each one timed: first on a device that
 *                    held none before (partial_first_ns: the one-time
 *                    costs, such as the first run of the code under TCG,
 *                    new slabs and the Rust core's index growing), then,
 *                    after iopf_queue_discard_partial(), again
 *                    (partial_ns: a device that held partials before).
 *                    layout=pcie: the held partials spread over group ids
 *                    1..511 (PCIe page request group indexes are 9 bits),
 *                    layout=distinct: one partial per group, ids 1..N (the
 *                    API takes a u32).
 *                    Past CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL (2048) the Rust
 *                    core drops the oldest groups, so at n=4096 it holds at
 *                    most 2048 while C holds 4096 (see held_max).
 *   concurrent devs=separate|shared threads=T
 *                    T kthreads report single-page groups, each on its own
 *                    device or all on one device, with at most 16 groups
 *                    of each thread unanswered; the handler defers to
 *                    iopf_queue_work() and the work item answers (the SVA
 *                    shape); T = 1, 2, 4
 *   memory what=device
 *                    allocations of iopf_queue_add_device()
 *   memory what=first_partial
 *                    allocations of a device's first partial request
 *   memory what=held_partial layout=L n=1024
 *                    allocations made while holding 1024 partials, on a
 *                    device that held partials before (the steady state);
 *                    layout=group64: 16 groups of 64 partials
 *   memory what=pending_group
 *                    allocations of a last-page request whose handler keeps
 *                    the group (answered later)
 */
#include <kunit/resource.h>
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/iommu.h>
#include <linux/ktime.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#ifdef CONFIG_TRACEPOINTS
#include <trace/events/kmem.h>
#endif

#include "iopf_harness.h"

static bool iopf_bench_enabled;
core_param(iopf_bench, iopf_bench_enabled, bool, 0444);

#define BENCH_MAX_DEVS		4
#define BENCH_WARMUP		512
#define BENCH_FIXED_FAULTS	65536
#define BENCH_GROUP_REQUESTS	65536
#define BENCH_GROUPS		8
#define BENCH_PROBES		2048
#define BENCH_PROBE_WARMUP	32
#define BENCH_MAX_HELD		4096
#define BENCH_PCIE_GRPIDS	512
#define BENCH_CONC_FAULTS	32768
#define BENCH_CONC_WINDOW	16
#define BENCH_CONC_GRPIDS	64
#define BENCH_MEM_PARTIALS	1024
#define BENCH_MEM_GROUPS	256
#define BENCH_NO_SAMPLE		U64_MAX

#define bench_log(test, fmt, ...)					\
	kunit_log(KERN_INFO, test,					\
		  KUNIT_SUBTEST_INDENT "# iopf_bench: " fmt "\n",	\
		  ##__VA_ARGS__)

struct bench_env;

/* One reporting thread of the concurrent scenario. */
struct bench_reporter {
	struct bench_env *env;
	struct device *dev;
	unsigned int id;
	u32 grpid_base;
	unsigned int nfaults;
	unsigned int first;
	atomic_t inflight;
	wait_queue_head_t wait;
	struct completion *go;
	u64 t_start;
	u64 t_end;
	unsigned int errors;
};

struct bench_env {
	struct kunit *test;
	struct iopf_h *h;
	struct iopf_mock_log *log;
	struct iopf_queue *queue;
	unsigned int ndevs;
	struct device *dev[BENCH_MAX_DEVS];
	struct iopf_h_handle *hh[BENCH_MAX_DEVS];
	/* Latency of each last-page request, by the sample index it carries. */
	u64 *lat;
	unsigned int nlat;
	atomic_t answered;
	struct bench_reporter *reporters;
};

/* Statistics */

struct bench_stats {
	unsigned int samples;
	u64 p50, p99, mean, min, max;
};

static int bench_cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Sorts @s; unset samples (BENCH_NO_SAMPLE) end up last and are left out. */
static void bench_stats(u64 *s, unsigned int n, struct bench_stats *st)
{
	u64 sum = 0;
	unsigned int i;

	sort(s, n, sizeof(*s), bench_cmp_u64, NULL);
	while (n && s[n - 1] == BENCH_NO_SAMPLE)
		n--;
	memset(st, 0, sizeof(*st));
	st->samples = n;
	if (!n)
		return;
	for (i = 0; i < n; i++)
		sum += s[i];
	st->p50 = s[(n - 1) * 50 / 100];
	st->p99 = s[(n - 1) * 99 / 100];
	st->mean = div_u64(sum, n);
	st->min = s[0];
	st->max = s[n - 1];
}

static void bench_log_stats(struct kunit *test, const char *key,
			    const char *metric, u64 *s, unsigned int n)
{
	struct bench_stats st;

	bench_stats(s, n, &st);
	bench_log(test, "%s metric=%s samples=%u p50=%llu p99=%llu mean=%llu min=%llu max=%llu",
		  key, metric, st.samples, st.p50, st.p99, st.mean, st.min,
		  st.max);
}

/* @count requests in @ns nanoseconds, as requests per second. */
static void bench_log_rate(struct kunit *test, const char *key, u64 count,
			   u64 ns)
{
	bench_log(test, "%s metric=faults_per_s value=%llu", key,
		  ns ? div64_u64(count * NSEC_PER_SEC, ns) : 0);
}

/* Allocation accounting through the slab tracepoints */

struct bench_acct {
	struct task_struct *task;
	u64 allocs;
	u64 frees;
	u64 alloc_bytes;
	u64 freed_bytes;
};

static struct bench_acct bench_acct;

#ifdef CONFIG_TRACEPOINTS
static bool bench_acct_mine(void)
{
	return READ_ONCE(bench_acct.task) == current && in_task();
}

static void bench_probe_kmalloc(void *data, unsigned long call_site,
				const void *ptr, size_t bytes_req,
				size_t bytes_alloc, gfp_t gfp_flags, int node)
{
	if (ptr && bench_acct_mine()) {
		bench_acct.allocs++;
		bench_acct.alloc_bytes += bytes_alloc;
	}
}

static void bench_probe_kmem_cache_alloc(void *data, unsigned long call_site,
					 const void *ptr, struct kmem_cache *s,
					 gfp_t gfp_flags, int node)
{
	if (ptr && bench_acct_mine()) {
		bench_acct.allocs++;
		bench_acct.alloc_bytes += kmem_cache_size(s);
	}
}

static void bench_probe_kfree(void *data, unsigned long call_site,
			      const void *ptr)
{
	if (!ZERO_OR_NULL_PTR(ptr) && bench_acct_mine()) {
		bench_acct.frees++;
		bench_acct.freed_bytes += ksize(ptr);
	}
}

static void bench_probe_kmem_cache_free(void *data, unsigned long call_site,
					const void *ptr,
					const struct kmem_cache *s)
{
	if (ptr && bench_acct_mine()) {
		bench_acct.frees++;
		bench_acct.freed_bytes += kmem_cache_size((struct kmem_cache *)s);
	}
}

static bool bench_acct_start(void)
{
	memset(&bench_acct, 0, sizeof(bench_acct));
	if (register_trace_kmalloc(bench_probe_kmalloc, NULL))
		return false;
	if (register_trace_kmem_cache_alloc(bench_probe_kmem_cache_alloc, NULL))
		goto err_kmalloc;
	if (register_trace_kfree(bench_probe_kfree, NULL))
		goto err_cache_alloc;
	if (register_trace_kmem_cache_free(bench_probe_kmem_cache_free, NULL))
		goto err_kfree;
	WRITE_ONCE(bench_acct.task, current);
	return true;

err_kfree:
	unregister_trace_kfree(bench_probe_kfree, NULL);
err_cache_alloc:
	unregister_trace_kmem_cache_alloc(bench_probe_kmem_cache_alloc, NULL);
err_kmalloc:
	unregister_trace_kmalloc(bench_probe_kmalloc, NULL);
	tracepoint_synchronize_unregister();
	return false;
}

static void bench_acct_stop(void)
{
	WRITE_ONCE(bench_acct.task, NULL);
	unregister_trace_kmem_cache_free(bench_probe_kmem_cache_free, NULL);
	unregister_trace_kfree(bench_probe_kfree, NULL);
	unregister_trace_kmem_cache_alloc(bench_probe_kmem_cache_alloc, NULL);
	unregister_trace_kmalloc(bench_probe_kmalloc, NULL);
	tracepoint_synchronize_unregister();
}
#else
static bool bench_acct_start(void)
{
	return false;
}

static void bench_acct_stop(void)
{
}
#endif

/* "a.bbb": @x / @n with three decimals. */
static void bench_ratio(char *buf, size_t len, u64 x, u64 n)
{
	u64 milli = n ? div64_u64(x * 1000, n) : 0;

	snprintf(buf, len, "%llu.%03llu", div_u64(milli, 1000),
		 milli % 1000);
}

static void bench_log_acct(struct kunit *test, const char *key,
			   const char *per, u64 n)
{
	char allocs[24], frees[24], ab[24], fb[24];

	bench_ratio(allocs, sizeof(allocs), bench_acct.allocs, n);
	bench_ratio(frees, sizeof(frees), bench_acct.frees, n);
	bench_ratio(ab, sizeof(ab), bench_acct.alloc_bytes, n);
	bench_ratio(fb, sizeof(fb), bench_acct.freed_bytes, n);
	bench_log(test, "%s metric=allocs per=%s allocs=%s frees=%s alloc_bytes=%s freed_bytes=%s",
		  key, per, allocs, frees, ab, fb);
}

/* Handlers */

/*
 * The harness's handler answers the groups (in the handler, or in its work
 * item with IOPF_H_DEFER), and this records the latency of each between the
 * response and the free. The last-page request carries its report time in
 * private_data[0] and, in private_data[1], the index of its latency sample
 * (low 32 bits) and of its reporter thread (high 32 bits).
 */
static void bench_answered(struct iopf_h_handle *hh, struct iopf_group *group)
{
	const struct iommu_fault_page_request *prm = &group->last_fault.fault.prm;
	struct bench_env *env = hh->priv;
	u64 t0 = prm->private_data[0];
	u32 idx = lower_32_bits(prm->private_data[1]);
	u32 reporter = upper_32_bits(prm->private_data[1]);
	struct bench_reporter *r;
	int left;

	if (idx < env->nlat)
		env->lat[idx] = ktime_get_ns() - t0;
	atomic_inc(&env->answered);

	if (!env->reporters)
		return;
	r = &env->reporters[reporter];
	left = atomic_dec_return(&r->inflight);
	if (left == BENCH_CONC_WINDOW - 1 || left == 0)
		wake_up(&r->wait);
}

/* Reports */

/*
 * Reports a page request of group @grpid (no PASID) on @dev. @tag goes to
 * private_data[1] (in place of the harness's tag: the handles act on their
 * own mode); private_data[0] gets the time of the report.
 */
static int bench_report(struct bench_env *env, struct device *dev, u32 grpid,
			bool last, u64 tag)
{
	struct iopf_fault evt = iopf_h_fault(env->h, 0, false, grpid, last, 0,
					     0, 0);

	evt.fault.prm.private_data[1] = tag;
	evt.fault.prm.private_data[0] = ktime_get_ns();

	return iommu_report_device_fault(dev, &evt);
}

KUNIT_DEFINE_ACTION_WRAPPER(bench_kvfree_action, kvfree, const void *);

/* A zeroed array of @n u64 owned by @test, possibly vmalloc'ed. */
static u64 *bench_samples_alloc(struct kunit *test, unsigned int n)
{
	u64 *s = kvcalloc(max(n, 1U), sizeof(*s), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, s);
	KUNIT_ASSERT_EQ(test,
			kunit_add_action_or_reset(test, bench_kvfree_action, s),
			0);
	return s;
}

/* Page responses the mock has seen (its log records one, counts the rest). */
static unsigned int bench_responses(struct bench_env *env)
{
	return iopf_mock_log_count(env->log) + iopf_mock_log_dropped(env->log);
}

/* Setup */

/*
 * A mock IOMMU, @ndevs devices each attached (RID) to a domain whose
 * handler (the harness's, without its bookkeeping) acts as @mode, all on
 * one IOPF queue, and room for @nlat latency samples. Released in reverse
 * order when the case ends.
 */
static struct bench_env *bench_setup(struct kunit *test, unsigned int ndevs,
				     enum iopf_h_mode mode, unsigned int nlat)
{
	struct iopf_h_opts opts = { .ndevs = ndevs, .log_size = 1 };
	struct bench_env *env;
	unsigned int i;

	KUNIT_ASSERT_LE(test, ndevs, BENCH_MAX_DEVS);
	env = kunit_kzalloc(test, sizeof(*env), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, env);
	env->test = test;
	atomic_set(&env->answered, 0);
	env->h = iopf_h_create(test, &opts);
	env->log = env->h->log;
	env->queue = env->h->queue;
	env->ndevs = ndevs;
	for (i = 0; i < ndevs; i++) {
		struct iopf_h_handle *hh;

		env->dev[i] = env->h->devs[i].dev;
		hh = iopf_h_attach_rid(env->h, env->dev[i], mode);
		hh->record = false;
		hh->answered = bench_answered;
		hh->priv = env;
		env->hh[i] = hh;
	}

	/* Added after attaching, so removed from the queue before detaching. */
	for (i = 0; i < ndevs; i++)
		iopf_h_add(&env->h->devs[i], env->queue);

	env->nlat = nlat;
	env->lat = bench_samples_alloc(test, nlat);

	return env;
}

static void bench_reset_samples(struct bench_env *env)
{
	unsigned int i;

	for (i = 0; i < env->nlat; i++)
		env->lat[i] = BENCH_NO_SAMPLE;
}

/* Cases */

/*
 * Sends @rounds rounds of @groups groups of @k pages, interleaved page by
 * page, on @dev; the last-page requests carry sample indexes from 0 on.
 * Returns the number of failed reports.
 */
static unsigned int bench_groups(struct bench_env *env, struct device *dev,
				 unsigned int k, unsigned int groups,
				 unsigned int rounds)
{
	unsigned int r, p, g, errors = 0;

	for (r = 0; r < rounds; r++) {
		for (p = 0; p < k; p++) {
			bool last = p == k - 1;

			for (g = 0; g < groups; g++)
				errors += !!bench_report(env, dev, g, last,
							 r * groups + g);
		}
		cond_resched();
	}

	return errors;
}

/*
 * Groups of @k pages, @groups interleaved, on one device, answered inline:
 * throughput, last-page latency and allocations.
 */
static void bench_run_groups(struct kunit *test, const char *key,
			     unsigned int k, unsigned int groups,
			     unsigned int requests)
{
	unsigned int rounds = max(requests / (k * groups), 1U);
	unsigned int nlast = rounds * groups;
	struct bench_env *env = bench_setup(test, 1, IOPF_H_ANSWER, nlast);
	struct device *dev = env->dev[0];
	unsigned int errors, expected = 0;
	u64 t0, t1;

	/* Warm up caches and slabs, untimed. */
	errors = bench_groups(env, dev, k, groups,
			      max(BENCH_WARMUP / (k * groups), 1U));
	expected = bench_responses(env);

	bench_reset_samples(env);
	t0 = ktime_get_ns();
	errors += bench_groups(env, dev, k, groups, rounds);
	t1 = ktime_get_ns();
	expected += nlast;

	bench_log_rate(test, key, (u64)nlast * k, t1 - t0);
	bench_log_stats(test, key, k == 1 ? "latency_ns" : "last_page_ns",
			env->lat, nlast);

	/* Allocations, in a pass of its own: the probes cost time. */
	rounds = max(BENCH_WARMUP / (k * groups), 1U);
	if (bench_acct_start()) {
		errors += bench_groups(env, dev, k, groups, rounds);
		bench_acct_stop();
		bench_log_acct(test, key, "fault", (u64)rounds * groups * k);
	} else {
		errors += bench_groups(env, dev, k, groups, rounds);
	}
	expected += rounds * groups;

	KUNIT_EXPECT_EQ(test, errors, 0);
	KUNIT_EXPECT_EQ(test, bench_responses(env), expected);
}

static void iopf_bench_fixed_cost(struct kunit *test)
{
	bench_run_groups(test, "scenario=fixed_cost", 1, 1, BENCH_FIXED_FAULTS);
}

static void iopf_bench_group_size(struct kunit *test)
{
	static const unsigned int sizes[] = { 1, 4, 16, 64 };
	unsigned int i;
	char key[64];

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		snprintf(key, sizeof(key), "scenario=group_size k=%u groups=%u",
			 sizes[i], BENCH_GROUPS);
		bench_run_groups(test, key, sizes[i], BENCH_GROUPS,
				 BENCH_GROUP_REQUESTS);
	}
}

enum bench_layout { BENCH_PCIE, BENCH_DISTINCT, BENCH_GROUP64 };

static const char *const bench_layout_names[] = {
	[BENCH_PCIE] = "pcie",
	[BENCH_DISTINCT] = "distinct",
	[BENCH_GROUP64] = "group64",
};

/* Group id of held partial number @i (never 0, the probe's). */
static u32 bench_held_grpid(enum bench_layout layout, unsigned int i)
{
	switch (layout) {
	case BENCH_PCIE:
		return 1 + i % (BENCH_PCIE_GRPIDS - 1);
	case BENCH_DISTINCT:
		return 1 + i;
	case BENCH_GROUP64:
		return 1 + i / 64;
	}
	return 1;
}

/* How many partials a device can hold after @n were reported. */
static unsigned int bench_held_max(unsigned int n)
{
#ifdef CONFIG_IOMMU_IOPF_RUST
	return min_t(unsigned int, n, CONFIG_IOMMU_IOPF_RUST_MAX_PARTIAL);
#else
	return n;
#endif
}

/* Holds n partials of other groups on dev, timing each one into hold[]. */
static void bench_hold_partials(struct bench_env *env, struct device *dev,
				enum bench_layout layout, unsigned int n,
				u64 *hold, unsigned int *errors)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		u64 t0 = ktime_get_ns();

		*errors += !!bench_report(env, dev, bench_held_grpid(layout, i),
					  false, 0);
		hold[i] = ktime_get_ns() - t0;
		if (!(i % 64))
			cond_resched();
	}
}

static void iopf_bench_held_partials(struct kunit *test)
{
	static const unsigned int counts[] = { 0, 64, 512, BENCH_MAX_HELD };
	static const enum bench_layout layouts[] = { BENCH_PCIE, BENCH_DISTINCT };
	struct bench_env *env = bench_setup(test, 1, IOPF_H_ANSWER,
					    BENCH_PROBES);
	struct device *dev = env->dev[0];
	unsigned int l, c, i, errors = 0, probes = 0;
	u64 *hold;
	char key[80];

	hold = bench_samples_alloc(test, BENCH_MAX_HELD);

	for (l = 0; l < ARRAY_SIZE(layouts); l++) {
		for (c = 0; c < ARRAY_SIZE(counts); c++) {
			enum bench_layout layout = layouts[l];
			unsigned int n = counts[c];

			snprintf(key, sizeof(key),
				 "scenario=held_partials layout=%s n=%u",
				 bench_layout_names[layout], n);

			/* Hold n partials of other groups, twice (see above). */
			bench_hold_partials(env, dev, layout, n, hold, &errors);
			if (n)
				bench_log_stats(test, key, "partial_first_ns",
						hold, n);
			iopf_queue_discard_partial(env->queue);
			bench_hold_partials(env, dev, layout, n, hold, &errors);

			/* Then time last-page requests of group 0, one by one. */
			for (i = 0; i < BENCH_PROBE_WARMUP; i++)
				errors += !!bench_report(env, dev, 0, true,
							 BENCH_NO_SAMPLE);
			bench_reset_samples(env);
			for (i = 0; i < BENCH_PROBES; i++) {
				errors += !!bench_report(env, dev, 0, true, i);
				if (!(i % 64))
					cond_resched();
			}
			probes += BENCH_PROBE_WARMUP + BENCH_PROBES;

			bench_log_stats(test, key, "last_page_ns", env->lat,
					BENCH_PROBES);
			if (n)
				bench_log_stats(test, key, "partial_ns", hold, n);
			bench_log(test, "%s metric=held_max value=%u", key,
				  bench_held_max(n));

			iopf_queue_discard_partial(env->queue);
		}
	}

	KUNIT_EXPECT_EQ(test, errors, 0);
	KUNIT_EXPECT_EQ(test, bench_responses(env), probes);
}

static int bench_reporter_fn(void *data)
{
	struct bench_reporter *r = data;
	unsigned int i;

	wait_for_completion(r->go);
	r->t_start = ktime_get_ns();
	for (i = 0; i < r->nfaults; i++) {
		u64 tag = ((u64)r->id << 32) | (r->first + i);

		wait_event(r->wait,
			   atomic_read(&r->inflight) < BENCH_CONC_WINDOW);
		atomic_inc(&r->inflight);
		if (bench_report(r->env, r->dev,
				 r->grpid_base + i % BENCH_CONC_GRPIDS, true,
				 tag)) {
			r->errors++;
			atomic_dec(&r->inflight);
		}
		cond_resched();
	}
	wait_event(r->wait, atomic_read(&r->inflight) == 0);
	r->t_end = ktime_get_ns();

	return 0;
}

/*
 * @nthreads reporters, on @nthreads devices or all on device 0 (@shared),
 * report BENCH_CONC_FAULTS single-page groups in all; the handler defers.
 */
static void bench_run_concurrent(struct kunit *test, struct bench_env *env,
				 unsigned int nthreads, bool shared)
{
	struct iopf_h_threads *threads;
	struct bench_reporter *r;
	struct completion go;
	unsigned int i, errors = 0;
	unsigned int per = BENCH_CONC_FAULTS / nthreads;
	unsigned int before = bench_responses(env);
	u64 t_start = U64_MAX, t_end = 0;
	char key[80];

	r = kunit_kcalloc(test, nthreads, sizeof(*r), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, r);
	threads = kunit_kzalloc(test, sizeof(*threads), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, threads);
	init_completion(&go);
	for (i = 0; i < nthreads; i++) {
		r[i].env = env;
		r[i].dev = env->dev[shared ? 0 : i];
		r[i].id = i;
		r[i].grpid_base = shared ? i * BENCH_CONC_GRPIDS : 0;
		r[i].nfaults = per;
		r[i].first = i * per;
		atomic_set(&r[i].inflight, 0);
		init_waitqueue_head(&r[i].wait);
		r[i].go = &go;
	}
	bench_reset_samples(env);
	env->reporters = r;

	for (i = 0; i < nthreads; i++)
		if (!iopf_h_thread_start(threads, bench_reporter_fn, &r[i],
					 "iopf_bench/", i))
			break;
	/* No assertion may end the case while reporters run. */
	complete_all(&go);
	iopf_h_threads_wait(threads);
	for (i = 0; i < env->ndevs; i++)
		iopf_queue_flush_dev(env->dev[i]);
	env->reporters = NULL;
	KUNIT_ASSERT_EQ(test, threads->started, nthreads);

	for (i = 0; i < threads->started; i++) {
		t_start = min(t_start, r[i].t_start);
		t_end = max(t_end, r[i].t_end);
		errors += r[i].errors;
	}
	snprintf(key, sizeof(key), "scenario=concurrent devs=%s threads=%u",
		 shared ? "shared" : "separate", nthreads);
	bench_log_rate(test, key, (u64)per * nthreads, t_end - t_start);
	bench_log_stats(test, key, "latency_ns", env->lat, per * nthreads);

	KUNIT_EXPECT_EQ(test, errors, 0);
	KUNIT_EXPECT_EQ(test, bench_responses(env) - before, per * nthreads);
}

static void iopf_bench_concurrent(struct kunit *test)
{
	static const unsigned int threads[] = { 1, 2, 4 };
	struct bench_env *env = bench_setup(test, BENCH_MAX_DEVS, IOPF_H_DEFER,
					    BENCH_CONC_FAULTS);
	unsigned int shared, i;

	for (shared = 0; shared < 2; shared++)
		for (i = 0; i < ARRAY_SIZE(threads); i++)
			bench_run_concurrent(test, env, threads[i], shared);
}

static void iopf_bench_memory(struct kunit *test)
{
	static const enum bench_layout layouts[] = {
		BENCH_DISTINCT, BENCH_PCIE, BENCH_GROUP64
	};
	struct bench_env *env = bench_setup(test, 1, IOPF_H_KEEP, 0);
	struct device *dev = env->dev[0];
	unsigned int l, i, kept, errors = 0;
	char key[80];

	if (!bench_acct_start())
		kunit_skip(test, "no allocation tracepoints (CONFIG_TRACEPOINTS)");
	bench_acct_stop();

	/*
	 * Per device, once: what iopf_queue_add_device() allocates, then what
	 * the device's first partial request does (the Rust core allocates
	 * its table of partials then). The held_partial rows that follow are
	 * the steady state, on the device that has held partials before.
	 */
	iopf_queue_remove_device(env->queue, dev);
	bench_acct_start();
	errors += !!iopf_queue_add_device(env->queue, dev);
	bench_acct_stop();
	bench_log_acct(test, "scenario=memory what=device", "device", 1);
	bench_acct_start();
	errors += !!bench_report(env, dev, 1, false, 0);
	bench_acct_stop();
	bench_log_acct(test, "scenario=memory what=first_partial", "partial", 1);
	iopf_queue_discard_partial(env->queue);

	for (l = 0; l < ARRAY_SIZE(layouts); l++) {
		snprintf(key, sizeof(key),
			 "scenario=memory what=held_partial layout=%s n=%u",
			 bench_layout_names[layouts[l]], BENCH_MEM_PARTIALS);
		bench_acct_start();
		for (i = 0; i < BENCH_MEM_PARTIALS; i++)
			errors += !!bench_report(env, dev,
						 bench_held_grpid(layouts[l], i),
						 false, 0);
		bench_acct_stop();
		bench_log_acct(test, key, "partial", BENCH_MEM_PARTIALS);
		iopf_queue_discard_partial(env->queue);
	}

	KUNIT_ASSERT_EQ(test, iopf_h_nkept(env->hh[0]), 0);
	env->hh[0]->max_kept = BENCH_MEM_GROUPS;
	bench_acct_start();
	for (i = 0; i < BENCH_MEM_GROUPS; i++)
		errors += !!bench_report(env, dev, i % BENCH_PCIE_GRPIDS, true,
					 0);
	bench_acct_stop();
	bench_log_acct(test, "scenario=memory what=pending_group", "group",
		       BENCH_MEM_GROUPS);
	kept = iopf_h_answer_kept(env->hh[0], IOMMU_PAGE_RESP_SUCCESS);

	KUNIT_EXPECT_EQ(test, errors, 0);
	KUNIT_EXPECT_EQ(test, kept, BENCH_MEM_GROUPS);
	KUNIT_EXPECT_EQ(test, bench_responses(env), BENCH_MEM_GROUPS);
}

/* Suite */

static int iopf_bench_suite_init(struct kunit_suite *suite)
{
	bool tracepoints;

	if (!iopf_bench_enabled)
		return 0;
	tracepoints = bench_acct_start();
	if (tracepoints)
		bench_acct_stop();
	bench_log(suite, "scenario=meta metric=build impl=%s max_partial=%u tracepoints=%d sizeof_fault=%zu sizeof_group=%zu",
		  IS_ENABLED(CONFIG_IOMMU_IOPF_RUST) ? "rust" : "c",
		  bench_held_max(UINT_MAX) == UINT_MAX ? 0 : bench_held_max(UINT_MAX),
		  tracepoints,
		  sizeof(struct iopf_fault), sizeof(struct iopf_group));
	return 0;
}

static int iopf_bench_init(struct kunit *test)
{
	if (!iopf_bench_enabled)
		kunit_skip(test, "not requested: boot with iopf_bench=1");
	return 0;
}

static struct kunit_case iopf_bench_cases[] = {
	KUNIT_CASE_SLOW(iopf_bench_fixed_cost),
	KUNIT_CASE_SLOW(iopf_bench_group_size),
	KUNIT_CASE_SLOW(iopf_bench_held_partials),
	KUNIT_CASE_SLOW(iopf_bench_concurrent),
	KUNIT_CASE_SLOW(iopf_bench_memory),
	{}
};

static struct kunit_suite iopf_bench_suite = {
	.name = "iopf_bench",
	.suite_init = iopf_bench_suite_init,
	.init = iopf_bench_init,
	.test_cases = iopf_bench_cases,
};

kunit_test_suite(iopf_bench_suite);
