// SPDX-License-Identifier: GPL-2.0
/*
 * The user-space half of the VT-d end-to-end test (`cargo xtask e2e`).
 *
 * Binds the QEMU test device iopf-testdev to this process's address space
 * through /dev/iopf-testdev (samples/rust/rust_iopf_testdev), then runs
 * jobs in which the device translates the process's virtual addresses with
 * ATS, sends page requests through the Intel VT-d driver into the IOPF
 * framework for the pages it cannot access, and writes or reads the pages
 * once their faults are resolved. Each case checks the device's counters
 * (page requests and groups sent, responses by code, per group index) and
 * the data, and prints one line:
 *
 *   # e2e: case NAME ok|FAIL key=value ...
 *
 * followed by "# e2e: why NAME: ..." lines for each failed check. The run
 * ends with "# e2e: done N cases, N failed". With "--bench N", it runs the
 * timing jobs N times instead and prints "# e2e-bench: ..." lines.
 *
 * The pattern the device writes and compares: the 64-bit word at virtual
 * address va holds seed + va.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DEV "/dev/iopf-testdev"

/* The driver's ioctls (samples/rust/rust_iopf_testdev). */
#define IOPF_TESTDEV_BIND	_IO('|', 0x90)
#define IOPF_TESTDEV_UNBIND	_IO('|', 0x91)
#define IOPF_TESTDEV_RUN	_IOW('|', 0x92, uint64_t[5])
#define IOPF_TESTDEV_COUNTERS	_IOR('|', 0x93, uint64_t[48])
#define IOPF_TESTDEV_GROUPS	_IOW('|', 0x94, uint64_t[2])
#define IOPF_TESTDEV_CLEAR	_IO('|', 0x95)

/* The device's registers, by index (offset / 8), as COUNTERS returns them. */
enum {
	REG_ID, REG_CAPS, REG_PASID, REG_ADDR, REG_LEN, REG_SEED, REG_CTRL,
	REG_CMD, REG_STATUS, REG_PAGES_DONE, REG_PAGES_INVALID,
	REG_PAGES_FAILURE, REG_PAGES_ERROR, REG_DATA_ERRORS, REG_FAIL_ADDR,
	REG_FAIL_CODE, REG_REQUESTS, REG_GROUPS, REG_RESP_SUCCESS,
	REG_RESP_INVALID, REG_RESP_FAILURE, REG_RESP_UNEXPECTED,
	REG_OUTSTANDING, REG_MAX_OUTSTANDING, REG_PRI_ALLOC,
	REG_TRANSLATIONS, REG_XLATE_MISSES, REG_RETRIES, REG_PR_ERRORS,
	REG_LATENCY_SUM_NS, REG_LATENCY_MAX_NS, REG_JOB_NS, REG_THROTTLED,
	REG_COUNTERS = 48,
};

#define CTRL_READ		1
#define CTRL_GROUP(n)		((uint64_t)(n) << 8)
#define CTRL_WINDOW(n)		((uint64_t)(n) << 16)
#define FAIL_INVALID		1
#define PRG_COUNT		512

struct prg {
	uint32_t groups, requests, success, invalid, failure, unexpected;
	uint32_t reserved[2];
};

struct result {
	uint64_t reg[REG_COUNTERS];
	struct prg prg[PRG_COUNT];
	/* Derived from the group table */
	uint64_t responses, lost, duplicated;
};

static int cases, failed;
static char why[4096];

static void fail(const char *fmt, ...)
{
	size_t len = strlen(why);
	va_list ap;

	va_start(ap, fmt);
	snprintf(why + len, sizeof(why) - len, "%s", len ? "; " : "");
	len = strlen(why);
	vsnprintf(why + len, sizeof(why) - len, fmt, ap);
	va_end(ap);
}

#define EXPECT(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

static int open_dev(void)
{
	int fd = open(DEV, O_RDWR);

	if (fd < 0)
		fprintf(stderr, "open %s: %s\n", DEV, strerror(errno));
	return fd;
}

static int read_result(int fd, struct result *r)
{
	uint64_t groups[2] = { (uintptr_t)r->prg, PRG_COUNT };
	int i;

	memset(r, 0, sizeof(*r));
	if (ioctl(fd, IOPF_TESTDEV_COUNTERS, r->reg) ||
	    ioctl(fd, IOPF_TESTDEV_GROUPS, groups))
		return -1;
	for (i = 0; i < PRG_COUNT; i++) {
		struct prg *p = &r->prg[i];
		uint64_t answered = p->success + p->invalid + p->failure;
		uint64_t matched = answered - p->unexpected;

		r->responses += answered;
		r->duplicated += p->unexpected;
		if (matched < p->groups)
			r->lost += p->groups - matched;
		else
			r->duplicated += matched - p->groups;
	}
	return 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Runs a job; returns 0 or the driver's errno. */
static int run_job(int fd, void *addr, size_t pages, uint64_t seed,
		   uint64_t ctrl, uint64_t timeout_ms)
{
	uint64_t job[5] = { (uintptr_t)addr, pages * PAGE, seed, ctrl,
			    timeout_ms };

	return ioctl(fd, IOPF_TESTDEV_RUN, job) ? errno : 0;
}

static void *map_anon(size_t pages, int prot)
{
	void *p = mmap(NULL, pages * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	/* One fault per 4 KiB page: no transparent huge page. */
	madvise(p, pages * PAGE, MADV_NOHUGEPAGE);
	return p;
}

/* Pages whose words do not all hold seed + va. */
static uint64_t wrong_pages(const void *addr, size_t pages, uint64_t seed)
{
	uint64_t wrong = 0;
	size_t i, w;

	for (i = 0; i < pages; i++) {
		const uint64_t *page = (const uint64_t *)((const char *)addr +
							  i * PAGE);

		for (w = 0; w < PAGE / 8; w++) {
			if (page[w] != seed + (uintptr_t)&page[w]) {
				wrong++;
				break;
			}
		}
	}
	return wrong;
}

/* Groups the device sends for `pages` pages with the mixed sizes 1..8. */
static uint64_t mixed_groups(uint64_t pages)
{
	uint64_t groups = 0, size = 1;

	while (pages) {
		pages -= pages < size ? pages : size;
		groups++;
		size = size % 8 + 1;
	}
	return groups;
}

static void report(const char *name, const struct result *r, int err,
		   uint64_t wrong)
{
	const uint64_t *g = r->reg;

	cases++;
	if (why[0])
		failed++;
	printf("# e2e: case %s %s err=%d requests=%llu groups=%llu "
	       "responses=%llu success=%llu invalid=%llu failure=%llu "
	       "unexpected=%llu lost=%llu duplicated=%llu done=%llu "
	       "pages_invalid=%llu pages_failure=%llu pages_error=%llu "
	       "wrong=%llu max_outstanding=%llu alloc=%llu job_ns=%llu "
	       "latency_sum_ns=%llu latency_max_ns=%llu\n",
	       name, why[0] ? "FAIL" : "ok", err,
	       (unsigned long long)g[REG_REQUESTS],
	       (unsigned long long)g[REG_GROUPS],
	       (unsigned long long)r->responses,
	       (unsigned long long)g[REG_RESP_SUCCESS],
	       (unsigned long long)g[REG_RESP_INVALID],
	       (unsigned long long)g[REG_RESP_FAILURE],
	       (unsigned long long)g[REG_RESP_UNEXPECTED],
	       (unsigned long long)r->lost,
	       (unsigned long long)r->duplicated,
	       (unsigned long long)g[REG_PAGES_DONE],
	       (unsigned long long)g[REG_PAGES_INVALID],
	       (unsigned long long)g[REG_PAGES_FAILURE],
	       (unsigned long long)g[REG_PAGES_ERROR],
	       (unsigned long long)(wrong + g[REG_DATA_ERRORS]),
	       (unsigned long long)g[REG_MAX_OUTSTANDING],
	       (unsigned long long)g[REG_PRI_ALLOC],
	       (unsigned long long)g[REG_JOB_NS],
	       (unsigned long long)g[REG_LATENCY_SUM_NS],
	       (unsigned long long)g[REG_LATENCY_MAX_NS]);
	if (why[0])
		printf("# e2e: why %s: %s\n", name, why);
	fflush(stdout);
	why[0] = 0;
}

/*
 * The checks every case makes: the group table adds up to the totals,
 * every group sent got exactly one response, nothing is in flight, and the
 * allocation was respected.
 */
static void check_accounting(const struct result *r)
{
	const uint64_t *g = r->reg;
	uint64_t groups = 0, requests = 0;
	int i;

	for (i = 0; i < PRG_COUNT; i++) {
		groups += r->prg[i].groups;
		requests += r->prg[i].requests;
	}
	EXPECT(groups == g[REG_GROUPS], "group table has %llu groups, "
	       "the device sent %llu", (unsigned long long)groups,
	       (unsigned long long)g[REG_GROUPS]);
	EXPECT(requests == g[REG_REQUESTS], "group table has %llu requests, "
	       "the device sent %llu", (unsigned long long)requests,
	       (unsigned long long)g[REG_REQUESTS]);
	EXPECT(r->lost == 0, "%llu groups never answered",
	       (unsigned long long)r->lost);
	EXPECT(r->duplicated == 0, "%llu responses beyond one per group",
	       (unsigned long long)r->duplicated);
	EXPECT(g[REG_OUTSTANDING] == 0, "%llu page requests still in flight",
	       (unsigned long long)g[REG_OUTSTANDING]);
	EXPECT(g[REG_PR_ERRORS] == 0, "the IOMMU refused %llu page requests",
	       (unsigned long long)g[REG_PR_ERRORS]);
	EXPECT(g[REG_PRI_ALLOC] > 0, "no Outstanding Page Request Allocation");
	EXPECT(g[REG_MAX_OUTSTANDING] <= g[REG_PRI_ALLOC],
	       "%llu page requests in flight, over the allocation of %llu",
	       (unsigned long long)g[REG_MAX_OUTSTANDING],
	       (unsigned long long)g[REG_PRI_ALLOC]);
}

static int begin(int fd)
{
	why[0] = 0;
	if (ioctl(fd, IOPF_TESTDEV_CLEAR)) {
		fail("CLEAR: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void finish(const char *name, int fd, int err, uint64_t wrong)
{
	struct result r;

	if (read_result(fd, &r)) {
		fail("reading the counters: %s", strerror(errno));
		memset(&r, 0, sizeof(r));
	} else {
		check_accounting(&r);
	}
	report(name, &r, err, wrong);
}

/*
 * Untouched anonymous memory, written by the device: one fault per page,
 * in groups of `group` pages; the data must be the pattern.
 */
static void case_anon(int fd, const char *name, size_t pages, int group)
{
	uint64_t seed = 0x5eed0000ULL + pages;
	struct result r;
	void *buf = map_anon(pages, PROT_READ | PROT_WRITE);
	uint64_t wrong = 0, groups;
	int err;

	if (begin(fd))
		return;
	err = run_job(fd, buf, pages, seed, CTRL_GROUP(group), 600000);
	EXPECT(err == 0, "RUN: %s", strerror(err));
	if (!err)
		wrong = wrong_pages(buf, pages, seed);
	EXPECT(wrong == 0, "%llu pages with wrong data",
	       (unsigned long long)wrong);
	if (!read_result(fd, &r)) {
		groups = group ? (pages + group - 1) / group :
				 mixed_groups(pages);
		EXPECT(r.reg[REG_PAGES_DONE] == pages, "%llu of %zu pages done",
		       (unsigned long long)r.reg[REG_PAGES_DONE], pages);
		EXPECT(r.reg[REG_REQUESTS] == pages,
		       "%llu page requests for %zu untouched pages",
		       (unsigned long long)r.reg[REG_REQUESTS], pages);
		EXPECT(r.reg[REG_GROUPS] == groups, "%llu groups, expected %llu",
		       (unsigned long long)r.reg[REG_GROUPS],
		       (unsigned long long)groups);
		EXPECT(r.reg[REG_RESP_SUCCESS] == groups,
		       "%llu SUCCESS responses for %llu groups",
		       (unsigned long long)r.reg[REG_RESP_SUCCESS],
		       (unsigned long long)groups);
		if (pages >= 1024)
			EXPECT(r.reg[REG_MAX_OUTSTANDING] > 8,
			       "at most %llu page requests were in flight",
			       (unsigned long long)r.reg[REG_MAX_OUTSTANDING]);
	}
	finish(name, fd, err, wrong);
	munmap(buf, pages * PAGE);
}

static int tmpfs_file(const char *name, size_t pages)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/%s", name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, pages * PAGE)) {
		perror(path);
		exit(2);
	}
	unlink(path);
	return fd;
}

/*
 * A file whose page cache holds the pattern, mapped read-only and never
 * touched by the CPU: the device reads it through read faults on the file.
 */
static void case_file_read(int fd, size_t pages, int group)
{
	uint64_t seed = 0xf11e0000ULL, wrong = 0;
	int file = tmpfs_file("read", pages);
	uint64_t *scratch;
	struct result r;
	char *map;
	size_t i, w;
	int err;

	if (begin(fd))
		return;
	/* Reserve the addresses first: the pattern depends on them. */
	map = mmap(NULL, pages * PAGE, PROT_READ, MAP_SHARED, file, 0);
	if (map == MAP_FAILED) {
		perror("mmap file");
		exit(2);
	}
	scratch = malloc(PAGE);
	for (i = 0; i < pages; i++) {
		for (w = 0; w < PAGE / 8; w++)
			scratch[w] = seed + (uintptr_t)(map + i * PAGE + 8 * w);
		if (pwrite(file, scratch, PAGE, i * PAGE) != PAGE) {
			perror("pwrite");
			exit(2);
		}
	}
	free(scratch);
	err = run_job(fd, map, pages, seed, CTRL_READ | CTRL_GROUP(group),
		      600000);
	EXPECT(err == 0, "RUN: %s", strerror(err));
	if (!read_result(fd, &r)) {
		EXPECT(r.reg[REG_PAGES_DONE] == pages, "%llu of %zu pages read",
		       (unsigned long long)r.reg[REG_PAGES_DONE], pages);
		EXPECT(r.reg[REG_DATA_ERRORS] == 0,
		       "the device read %llu pages with wrong data",
		       (unsigned long long)r.reg[REG_DATA_ERRORS]);
		EXPECT(r.reg[REG_REQUESTS] == pages,
		       "%llu page requests for %zu unmapped file pages",
		       (unsigned long long)r.reg[REG_REQUESTS], pages);
	}
	finish("file-read", fd, err, wrong);
	munmap(map, pages * PAGE);
	close(file);
}

/* A shared file mapping written by the device; read back with pread(). */
static void case_file_write(int fd, size_t pages, int group)
{
	uint64_t seed = 0xf11e8000ULL, wrong = 0;
	int file = tmpfs_file("write", pages);
	uint64_t *page = malloc(PAGE);
	struct result r;
	char *map;
	size_t i, w;
	int err;

	if (begin(fd))
		return;
	map = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		   file, 0);
	if (map == MAP_FAILED) {
		perror("mmap file");
		exit(2);
	}
	err = run_job(fd, map, pages, seed, CTRL_GROUP(group), 600000);
	EXPECT(err == 0, "RUN: %s", strerror(err));
	for (i = 0; !err && i < pages; i++) {
		if (pread(file, page, PAGE, i * PAGE) != PAGE) {
			perror("pread");
			exit(2);
		}
		for (w = 0; w < PAGE / 8; w++) {
			if (page[w] != seed + (uintptr_t)(map + i * PAGE + 8 * w)) {
				wrong++;
				break;
			}
		}
	}
	EXPECT(wrong == 0, "%llu file pages with wrong data",
	       (unsigned long long)wrong);
	if (!read_result(fd, &r)) {
		EXPECT(r.reg[REG_PAGES_DONE] == pages, "%llu of %zu pages done",
		       (unsigned long long)r.reg[REG_PAGES_DONE], pages);
		EXPECT(r.reg[REG_REQUESTS] == pages,
		       "%llu page requests for %zu file pages",
		       (unsigned long long)r.reg[REG_REQUESTS], pages);
	}
	finish("file-write", fd, err, wrong);
	free(page);
	munmap(map, pages * PAGE);
	close(file);
}

/*
 * Writes the kernel must refuse: every group is answered INVALID (not
 * SUCCESS), no page is written, and the device reports the first page it
 * gave up and why.
 */
static void case_refused(int fd, const char *name, void *addr, size_t pages,
			 int group)
{
	uint64_t groups = (pages + group - 1) / group;
	struct result r;
	int err;

	if (begin(fd))
		return;
	err = run_job(fd, addr, pages, 0xbad0000ULL, CTRL_GROUP(group), 600000);
	EXPECT(err == 0, "RUN: %s", strerror(err));
	if (!read_result(fd, &r)) {
		EXPECT(r.reg[REG_PAGES_DONE] == 0, "%llu pages written",
		       (unsigned long long)r.reg[REG_PAGES_DONE]);
		EXPECT(r.reg[REG_PAGES_INVALID] == pages,
		       "%llu of %zu pages answered INVALID",
		       (unsigned long long)r.reg[REG_PAGES_INVALID], pages);
		EXPECT(r.reg[REG_RESP_INVALID] == groups,
		       "%llu INVALID responses for %llu groups",
		       (unsigned long long)r.reg[REG_RESP_INVALID],
		       (unsigned long long)groups);
		EXPECT(r.reg[REG_RESP_SUCCESS] == 0, "%llu SUCCESS responses",
		       (unsigned long long)r.reg[REG_RESP_SUCCESS]);
		/* Groups are answered in any order: any page of the range. */
		EXPECT(r.reg[REG_FAIL_CODE] == FAIL_INVALID &&
		       r.reg[REG_FAIL_ADDR] >= (uintptr_t)addr &&
		       r.reg[REG_FAIL_ADDR] < (uintptr_t)addr + pages * PAGE &&
		       !(r.reg[REG_FAIL_ADDR] % PAGE),
		       "the device reports code %llu at %#llx, expected %d "
		       "in %p + %zu pages",
		       (unsigned long long)r.reg[REG_FAIL_CODE],
		       (unsigned long long)r.reg[REG_FAIL_ADDR], FAIL_INVALID,
		       addr, pages);
	}
	finish(name, fd, err, 0);
}

struct bg_job {
	int fd;
	void *addr;
	size_t pages;
	int err;
};

static void *bg_run(void *arg)
{
	struct bg_job *job = arg;

	job->err = run_job(job->fd, job->addr, job->pages, 0x1f11e0000ULL,
			   CTRL_GROUP(0), 600000);
	return NULL;
}

/* Waits until the device has page requests in flight; returns how many. */
static uint64_t wait_in_flight(int fd, uint64_t min_requests)
{
	uint64_t reg[REG_COUNTERS];
	int64_t deadline = now_ns() + 120 * 1000000000LL;

	while (now_ns() < deadline) {
		if (ioctl(fd, IOPF_TESTDEV_COUNTERS, reg))
			return 0;
		if (reg[REG_REQUESTS] >= min_requests && reg[REG_OUTSTANDING])
			return reg[REG_OUTSTANDING];
		usleep(200);
	}
	return 0;
}

/*
 * Unbind while the device has page requests in flight: the driver stops
 * the device and unbinds the PASID; the VT-d driver drains the page
 * requests and answers the pending ones. Every group still gets exactly
 * one response, and the job ends as aborted.
 */
static void case_unbind_in_flight(int fd, size_t pages)
{
	struct bg_job job = { .fd = fd, .pages = pages };
	uint64_t in_flight;
	pthread_t thread;
	int err;

	if (begin(fd))
		return;
	job.addr = map_anon(pages, PROT_READ | PROT_WRITE);
	pthread_create(&thread, NULL, bg_run, &job);
	in_flight = wait_in_flight(fd, 256);
	EXPECT(in_flight > 0, "no page request in flight to unbind with");
	err = ioctl(fd, IOPF_TESTDEV_UNBIND) ? errno : 0;
	EXPECT(err == 0, "UNBIND: %s", strerror(err));
	pthread_join(thread, NULL);
	EXPECT(job.err == ECANCELED, "the job ended with %s, not as aborted",
	       strerror(job.err));
	printf("# e2e: in flight at unbind: %llu page requests\n",
	       (unsigned long long)in_flight);
	finish("unbind-in-flight", fd, job.err == ECANCELED ? 0 : job.err, 0);
	munmap(job.addr, pages * PAGE);
	if (ioctl(fd, IOPF_TESTDEV_BIND) < 0)
		printf("# e2e: BIND after unbind: %s\n", strerror(errno));
}

static int find_device(char *bdf, size_t len)
{
	struct dirent *d;
	DIR *dir = opendir("/sys/bus/pci/devices");
	int found = -1;

	while (dir && (d = readdir(dir))) {
		char path[300], id[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device",
			 d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(id, sizeof(id), f) && !strncmp(id, "0x10f0", 6)) {
			snprintf(bdf, len, "%s", d->d_name);
			found = 0;
		}
		fclose(f);
	}
	if (dir)
		closedir(dir);
	return found;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	int ret = fd < 0 || write(fd, text, strlen(text)) < 0 ? -1 : 0;

	if (fd >= 0)
		close(fd);
	return ret;
}

/*
 * Remove the PCI device (sysfs "remove") while it has page requests in
 * flight: the driver's unbind stops it and unbinds the PASID, then the
 * IOMMU releases the device. After a rescan the device comes back with its
 * counters, which must show every group answered exactly once.
 */
static int case_remove_in_flight(int fd, size_t pages)
{
	struct bg_job job = { .fd = fd, .pages = pages };
	char bdf[300], path[400];
	uint64_t in_flight;
	pthread_t thread;
	int64_t deadline;
	int err = 0;

	if (find_device(bdf, sizeof(bdf))) {
		fail("no 1af4:10f0 device in /sys/bus/pci/devices");
		finish("remove-in-flight", fd, ENODEV, 0);
		return fd;
	}
	if (begin(fd))
		return fd;
	job.addr = map_anon(pages, PROT_READ | PROT_WRITE);
	pthread_create(&thread, NULL, bg_run, &job);
	in_flight = wait_in_flight(fd, 256);
	EXPECT(in_flight > 0, "no page request in flight to remove with");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
	if (write_file(path, "1"))
		fail("writing %s: %s", path, strerror(errno));
	pthread_join(thread, NULL);
	/*
	 * The driver's unbind aborts the job: the waiting RUN sees it end as
	 * aborted, or the device already gone.
	 */
	EXPECT(job.err == ECANCELED || job.err == ENODEV,
	       "the job ended with %s, not as aborted or removed",
	       strerror(job.err));
	printf("# e2e: in flight at remove: %llu page requests\n",
	       (unsigned long long)in_flight);
	close(fd);
	munmap(job.addr, pages * PAGE);

	if (write_file("/sys/bus/pci/rescan", "1"))
		fail("rescan: %s", strerror(errno));
	deadline = now_ns() + 30 * 1000000000LL;
	while ((fd = open(DEV, O_RDWR)) < 0 && now_ns() < deadline)
		usleep(10000);
	if (fd < 0) {
		fail("%s did not come back after the rescan", DEV);
		err = ENODEV;
		fd = -1;
		cases++;
		failed++;
		printf("# e2e: case remove-in-flight FAIL err=%d\n", err);
		printf("# e2e: why remove-in-flight: %s\n", why);
		why[0] = 0;
		return fd;
	}
	finish("remove-in-flight", fd,
	       job.err == ECANCELED || job.err == ENODEV ? 0 : job.err, 0);
	if (ioctl(fd, IOPF_TESTDEV_BIND) < 0)
		printf("# e2e: BIND after the rescan: %s\n", strerror(errno));
	return fd;
}

/* The timing jobs: `runs` times each, on the non-debug kernels. */
static void bench(int fd, int runs)
{
	static const struct {
		const char *name;
		size_t pages;
		uint64_t ctrl;
	} jobs[] = {
		/* One page request in flight at a time: the latency. */
		{ "serial", 1024, CTRL_GROUP(1) | CTRL_WINDOW(1) },
		/* Groups of 1..8 pages, as many in flight as allowed. */
		{ "burst", 8192, CTRL_GROUP(0) },
	};
	struct result r;
	unsigned int j;
	int i;

	/* Round -1 warms up (page tables, slab caches) and is not printed. */
	for (i = -1; i < runs; i++) {
		for (j = 0; j < ARRAY_SIZE(jobs); j++) {
			void *buf = map_anon(jobs[j].pages,
					     PROT_READ | PROT_WRITE);
			int64_t start = now_ns();
			int err;

			ioctl(fd, IOPF_TESTDEV_CLEAR);
			err = run_job(fd, buf, jobs[j].pages, 1, jobs[j].ctrl,
				      600000);
			start = now_ns() - start;
			read_result(fd, &r);
			if (i < 0) {
				munmap(buf, jobs[j].pages * PAGE);
				continue;
			}
			printf("# e2e-bench: job=%s run=%d err=%d pages=%zu "
			       "requests=%llu groups=%llu responses=%llu "
			       "lost=%llu duplicated=%llu wrong=%llu "
			       "job_ns=%llu latency_sum_ns=%llu wall_ns=%lld\n",
			       jobs[j].name, i, err, jobs[j].pages,
			       (unsigned long long)r.reg[REG_REQUESTS],
			       (unsigned long long)r.reg[REG_GROUPS],
			       (unsigned long long)r.responses,
			       (unsigned long long)r.lost,
			       (unsigned long long)r.duplicated,
			       (unsigned long long)wrong_pages(buf,
					jobs[j].pages, 1),
			       (unsigned long long)r.reg[REG_JOB_NS],
			       (unsigned long long)r.reg[REG_LATENCY_SUM_NS],
			       (long long)start);
			fflush(stdout);
			munmap(buf, jobs[j].pages * PAGE);
		}
	}
}

int main(int argc, char **argv)
{
	int pasid, fd = open_dev();
	void *ro, *gone;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fd < 0) {
		printf("# e2e: done 0 cases, 1 failed (no %s)\n", DEV);
		return 1;
	}
	pasid = ioctl(fd, IOPF_TESTDEV_BIND);
	if (pasid < 0) {
		printf("# e2e: BIND: %s\n", strerror(errno));
		printf("# e2e: done 0 cases, 1 failed (no binding)\n");
		return 1;
	}
	printf("# e2e: bound to PASID %d\n", pasid);

	if (argc == 3 && !strcmp(argv[1], "--bench")) {
		bench(fd, atoi(argv[2]));
		printf("# e2e-bench: done\n");
		return 0;
	}

	case_anon(fd, "anon-single", 64, 1);
	case_anon(fd, "anon-groups", 256, 8);
	case_file_read(fd, 128, 4);
	case_file_write(fd, 128, 2);

	ro = map_anon(16, PROT_READ);
	case_refused(fd, "write-readonly", ro, 16, 4);
	munmap(ro, 16 * PAGE);

	gone = map_anon(16, PROT_READ | PROT_WRITE);
	munmap(gone, 16 * PAGE);
	case_refused(fd, "unmapped", gone, 16, 1);

	case_anon(fd, "burst", 8192, 0);
	case_unbind_in_flight(fd, 16384);
	fd = case_remove_in_flight(fd, 16384);

	printf("# e2e: done %d cases, %d failed\n", cases, failed);
	if (fd >= 0)
		close(fd);
	return failed ? 1 : 0;
}
