/*
 * PCIe test device that makes I/O page faults through ATS and PRI
 *
 * Copyright (c) 2026 The iopf-rust project
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The device has the PASID, ATS and PRI extended capabilities. On command
 * from its guest driver it walks a range of virtual addresses of one PASID:
 * each page is translated with an ATS Translation Request; the pages whose
 * translation comes back without the access the device needs are sent to
 * the IOMMU as PRI Page Requests, in Page Request Groups of one or more
 * pages under one group index (PRGI), never more page requests in flight
 * than the Outstanding Page Request Allocation the driver granted. When a
 * group's PRG Response arrives, its pages are translated again (Success) or
 * given up (Invalid Request, Response Failure). Every translated page then
 * gets its DMA: a pattern written, or the page read back and compared with
 * the pattern. The device counts, per group index, the groups and page
 * requests sent and the responses received by code, including responses
 * for an index that has no group in flight.
 *
 * PCI ID 1af4:10f0, from the range QEMU keeps for experimental devices.
 *
 * The pattern: the 64-bit little-endian word at virtual address va holds
 * SEED + va.
 *
 * BAR0 (32 KiB, registers 64-bit, 32-bit accesses allowed):
 *   0x000 ID         RO  0x46504f49 ("IOPF") << 32 | version
 *   0x008 CAPS       RO  [15:0] PRI capacity, [23:16] largest group,
 *                        [63:32] largest job in pages
 *   0x010 PASID      RW  PASID of the job
 *   0x018 ADDR       RW  first virtual address (page aligned)
 *   0x020 LEN        RW  length in bytes (whole pages)
 *   0x028 SEED       RW  pattern seed
 *   0x030 CTRL       RW  [0] 0: write the pattern, 1: read and compare;
 *                        [15:8] pages per group, 0: 1, 2, ... 8 in turn;
 *                        [31:16] most page requests in flight, 0: the
 *                        Outstanding Page Request Allocation
 *   0x038 CMD        WO  1 start, 2 abort, 3 clear the counters
 *   0x040 STATUS     RO  [0] busy, [1] done, [2] aborted, [3] refused
 *   0x048 ...        RO  counters, see IopfTestdevReg
 *   0x1000 + 32 * i  RO  the counters of group index i, 8 x 32 bit:
 *                        groups, page requests, success, invalid,
 *                        failure, unexpected, 0, 0
 *
 * The device keeps no translation beyond the page it is working on: the
 * translation and the DMA of a page happen in one run of its bottom half,
 * under the BQL, so no invalidation can come between them and the device
 * needs no device-TLB invalidation notifier.
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qemu/log.h"
#include "qapi/error.h"
#include "hw/pci/pci.h"
#include "hw/pci/pci_device.h"
#include "hw/pci/pcie.h"
#include "hw/qdev-properties.h"
#include "migration/vmstate.h"
#include "system/memory.h"
#include "qom/object.h"

#define TYPE_IOPF_TESTDEV "iopf-testdev"
OBJECT_DECLARE_SIMPLE_TYPE(IopfTestdevState, IOPF_TESTDEV)

/* docs/specs/pci-ids.rst: 1af4:10f0-10ff are for experimental use */
#define IOPF_TESTDEV_DEVICE_ID  0x10f0
#define IOPF_TESTDEV_ID         ((0x46504f49ULL << 32) | 1)
#define IOPF_TESTDEV_MMIO_SIZE  (32 * KiB)
#define IOPF_TESTDEV_PAGE       4096
#define IOPF_TESTDEV_PRG_COUNT  (PCI_PRI_PRGI_MASK + 1)
#define IOPF_TESTDEV_MAX_GROUP  32
#define IOPF_TESTDEV_MAX_PAGES  (64 * 1024)
/* Translations per run of the bottom half, so vCPUs get the BQL back. */
#define IOPF_TESTDEV_BATCH      32
/* Translations of one page after a Success response before giving up. */
#define IOPF_TESTDEV_MAX_RETRIES 8

#define IOPF_TESTDEV_PCIE_CAP   0x80
#define IOPF_TESTDEV_ATS_CAP    0x100
#define IOPF_TESTDEV_PASID_CAP  0x110
#define IOPF_TESTDEV_PRI_CAP    0x120

#define IOPF_TESTDEV_PRG_BASE   0x1000
#define IOPF_TESTDEV_PRG_STRIDE 32

enum {
    IOPF_TESTDEV_CTRL_READ = 1 << 0,
};
#define IOPF_TESTDEV_CTRL_GROUP(ctrl) (((ctrl) >> 8) & 0xff)
#define IOPF_TESTDEV_CTRL_WINDOW(ctrl) (((ctrl) >> 16) & 0xffff)

enum {
    IOPF_TESTDEV_CMD_START = 1,
    IOPF_TESTDEV_CMD_ABORT = 2,
    IOPF_TESTDEV_CMD_CLEAR = 3,
};

enum {
    IOPF_TESTDEV_STATUS_BUSY = 1 << 0,
    IOPF_TESTDEV_STATUS_DONE = 1 << 1,
    IOPF_TESTDEV_STATUS_ABORTED = 1 << 2,
    IOPF_TESTDEV_STATUS_REFUSED = 1 << 3,
};

/* Why a page was given up, in FAIL_CODE. */
enum {
    IOPF_TESTDEV_FAIL_NONE = 0,
    IOPF_TESTDEV_FAIL_INVALID = 1,   /* answered Invalid Request */
    IOPF_TESTDEV_FAIL_FAILURE = 2,   /* answered Response Failure */
    IOPF_TESTDEV_FAIL_RETRIES = 3,   /* Success, yet still no translation */
    IOPF_TESTDEV_FAIL_PRI = 4,       /* the IOMMU refused the page request */
    IOPF_TESTDEV_FAIL_ATS = 5,       /* the translation request failed */
    IOPF_TESTDEV_FAIL_DMA = 6,       /* the DMA to the translation failed */
    IOPF_TESTDEV_FAIL_ABORTED = 7,   /* the job was aborted first */
};

/* The 64-bit registers, by offset / 8. */
typedef enum IopfTestdevReg {
    REG_ID,
    REG_CAPS,
    REG_PASID,
    REG_ADDR,
    REG_LEN,
    REG_SEED,
    REG_CTRL,
    REG_CMD,
    REG_STATUS,
    REG_PAGES_DONE,         /* pages whose DMA was done */
    REG_PAGES_INVALID,      /* pages given up: Invalid Request */
    REG_PAGES_FAILURE,      /* pages given up: Response Failure */
    REG_PAGES_ERROR,        /* pages given up for another reason */
    REG_DATA_ERRORS,        /* pages read back with a wrong word */
    REG_FAIL_ADDR,          /* first page given up */
    REG_FAIL_CODE,          /* and why */
    REG_REQUESTS,           /* page requests sent */
    REG_GROUPS,             /* page request groups sent */
    REG_RESP_SUCCESS,       /* responses received, by code */
    REG_RESP_INVALID,
    REG_RESP_FAILURE,
    REG_RESP_UNEXPECTED,    /* responses for an index with no group */
    REG_OUTSTANDING,        /* page requests in flight now */
    REG_MAX_OUTSTANDING,    /* most page requests ever in flight */
    REG_PRI_ALLOC,          /* Outstanding Page Request Allocation */
    REG_TRANSLATIONS,       /* ATS translation requests */
    REG_XLATE_MISSES,       /* translations without the needed access */
    REG_RETRIES,            /* translations retried after Success */
    REG_PR_ERRORS,          /* page requests the IOMMU refused */
    REG_LATENCY_SUM_NS,     /* sum over groups of request-to-response */
    REG_LATENCY_MAX_NS,
    REG_JOB_NS,             /* duration of the last job */
    REG_THROTTLED,          /* times a group waited for the allocation */
    REG_COUNT,
} IopfTestdevReg;

/* Registers that CMD_CLEAR sets to zero: the counters. */
#define IOPF_TESTDEV_FIRST_COUNTER REG_PAGES_DONE

enum {
    PAGE_TRANSLATE,     /* waits in the translation queue */
    PAGE_PENDING,       /* needs a page request */
    PAGE_IN_FLIGHT,     /* in a group waiting for its response */
    PAGE_DONE,
    PAGE_FAILED,
};

typedef struct IopfTestdevGroup {
    bool busy;
    uint32_t pasid;
    uint32_t npages;
    uint32_t pages[IOPF_TESTDEV_MAX_GROUP];
    int64_t sent_ns;
} IopfTestdevGroup;

typedef struct IopfTestdevPrgCounters {
    uint32_t groups;
    uint32_t requests;
    uint32_t success;
    uint32_t invalid;
    uint32_t failure;
    uint32_t unexpected;
    uint32_t reserved[2];
} IopfTestdevPrgCounters;

QEMU_BUILD_BUG_ON(sizeof(IopfTestdevPrgCounters) != IOPF_TESTDEV_PRG_STRIDE);
QEMU_BUILD_BUG_ON(IOPF_TESTDEV_PRG_BASE + IOPF_TESTDEV_PRG_COUNT *
                  IOPF_TESTDEV_PRG_STRIDE > IOPF_TESTDEV_MMIO_SIZE);

typedef struct IopfTestdevNotifier {
    IOMMUPRINotifier notifier;
    IopfTestdevState *dev;
    uint32_t pasid;
} IopfTestdevNotifier;

struct IopfTestdevState {
    PCIDevice parent_obj;

    MemoryRegion mmio;
    QEMUBH *bh;
    /* PASID -> IopfTestdevNotifier, one per PASID the device has used */
    GHashTable *notifiers;

    /* Properties */
    uint32_t pri_capacity;

    uint64_t regs[REG_COUNT];
    IopfTestdevPrgCounters prg[IOPF_TESTDEV_PRG_COUNT];
    IopfTestdevGroup groups[IOPF_TESTDEV_PRG_COUNT];

    /* The job */
    bool aborting;
    uint32_t npages;
    uint8_t *page_state;
    uint8_t *page_retries;
    uint32_t *xlate;            /* ring of page indexes to translate */
    uint32_t xlate_head;
    uint32_t xlate_count;
    uint32_t *pending;          /* ring of pages that need a page request */
    uint32_t pending_head;
    uint32_t pending_count;
    uint32_t outstanding;       /* page requests in flight */
    uint32_t next_prgi;
    uint32_t group_turn;
    int64_t job_start_ns;
};

static bool iopf_testdev_busy(IopfTestdevState *s)
{
    return s->regs[REG_STATUS] & IOPF_TESTDEV_STATUS_BUSY;
}

static bool iopf_testdev_reads(IopfTestdevState *s)
{
    return s->regs[REG_CTRL] & IOPF_TESTDEV_CTRL_READ;
}

static uint64_t iopf_testdev_va(IopfTestdevState *s, uint32_t page)
{
    return s->regs[REG_ADDR] + (uint64_t)page * IOPF_TESTDEV_PAGE;
}

static void iopf_testdev_free_job(IopfTestdevState *s)
{
    g_clear_pointer(&s->page_state, g_free);
    g_clear_pointer(&s->page_retries, g_free);
    g_clear_pointer(&s->xlate, g_free);
    g_clear_pointer(&s->pending, g_free);
    s->npages = 0;
    s->xlate_count = 0;
    s->pending_count = 0;
}

static void iopf_testdev_finish(IopfTestdevState *s, uint64_t why)
{
    s->regs[REG_JOB_NS] = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) -
                          s->job_start_ns;
    s->regs[REG_STATUS] = why;
    s->aborting = false;
    iopf_testdev_free_job(s);
}

static void iopf_testdev_push_xlate(IopfTestdevState *s, uint32_t page)
{
    uint32_t tail = (s->xlate_head + s->xlate_count) % s->npages;

    s->xlate[tail] = page;
    s->xlate_count++;
    s->page_state[page] = PAGE_TRANSLATE;
}

static uint32_t iopf_testdev_pop_xlate(IopfTestdevState *s)
{
    uint32_t page = s->xlate[s->xlate_head];

    s->xlate_head = (s->xlate_head + 1) % s->npages;
    s->xlate_count--;
    return page;
}

static void iopf_testdev_push_pending(IopfTestdevState *s, uint32_t page)
{
    uint32_t tail = (s->pending_head + s->pending_count) % s->npages;

    s->pending[tail] = page;
    s->pending_count++;
    s->page_state[page] = PAGE_PENDING;
}

/* Pending pages leave in address order, as they were translated. */
static uint32_t iopf_testdev_pop_pending(IopfTestdevState *s)
{
    uint32_t page = s->pending[s->pending_head];

    s->pending_head = (s->pending_head + 1) % s->npages;
    s->pending_count--;
    return page;
}

static void iopf_testdev_fail_page(IopfTestdevState *s, uint32_t page,
                                   uint64_t code)
{
    s->page_state[page] = PAGE_FAILED;
    switch (code) {
    case IOPF_TESTDEV_FAIL_INVALID:
        s->regs[REG_PAGES_INVALID]++;
        break;
    case IOPF_TESTDEV_FAIL_FAILURE:
        s->regs[REG_PAGES_FAILURE]++;
        break;
    default:
        s->regs[REG_PAGES_ERROR]++;
        break;
    }
    if (s->regs[REG_FAIL_CODE] == IOPF_TESTDEV_FAIL_NONE) {
        s->regs[REG_FAIL_CODE] = code;
        s->regs[REG_FAIL_ADDR] = iopf_testdev_va(s, page);
    }
}

/*
 * Translate one page with ATS and, if the translation gives the access the
 * job needs, do the page's DMA. Returns false if the page needs a page
 * request.
 */
static bool iopf_testdev_translate_and_dma(IopfTestdevState *s,
                                           uint32_t page)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    bool reads = iopf_testdev_reads(s);
    IOMMUAccessFlags need = reads ? IOMMU_RO : IOMMU_RW;
    uint64_t va = iopf_testdev_va(s, page);
    uint64_t words[IOPF_TESTDEV_PAGE / 8];
    IOMMUTLBEntry entry;
    uint32_t misses = 0;
    MemTxResult res;
    hwaddr pa;
    ssize_t n;
    int i;

    s->regs[REG_TRANSLATIONS]++;
    n = pci_ats_request_translation(pdev, s->regs[REG_PASID], false, false,
                                    va, IOPF_TESTDEV_PAGE, reads, &entry, 1,
                                    &misses);
    if (n != 1) {
        iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_ATS);
        return true;
    }
    if (misses || (entry.perm & need) != need) {
        s->regs[REG_XLATE_MISSES]++;
        return false;
    }

    pa = entry.translated_addr | (va & entry.addr_mask);
    if (reads) {
        res = address_space_read(entry.target_as, pa, MEMTXATTRS_UNSPECIFIED,
                                 words, sizeof(words));
    } else {
        for (i = 0; i < ARRAY_SIZE(words); i++) {
            words[i] = cpu_to_le64(s->regs[REG_SEED] + va + 8 * i);
        }
        res = address_space_write(entry.target_as, pa, MEMTXATTRS_UNSPECIFIED,
                                  words, sizeof(words));
    }
    if (res != MEMTX_OK) {
        iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_DMA);
        return true;
    }
    if (reads) {
        for (i = 0; i < ARRAY_SIZE(words); i++) {
            if (le64_to_cpu(words[i]) != s->regs[REG_SEED] + va + 8 * i) {
                s->regs[REG_DATA_ERRORS]++;
                break;
            }
        }
    }
    s->page_state[page] = PAGE_DONE;
    s->regs[REG_PAGES_DONE]++;
    return true;
}

/* Pages in the next group: fixed, or 1, 2, ... 8 in turn. */
static uint32_t iopf_testdev_group_size(IopfTestdevState *s)
{
    uint32_t size = IOPF_TESTDEV_CTRL_GROUP(s->regs[REG_CTRL]);

    if (size == 0) {
        size = 1 + s->group_turn % 8;
    }
    return MIN(size, IOPF_TESTDEV_MAX_GROUP);
}

/* A free group index, round robin so that an index is reused late. */
static int iopf_testdev_alloc_prgi(IopfTestdevState *s)
{
    int i;

    for (i = 0; i < IOPF_TESTDEV_PRG_COUNT; i++) {
        uint32_t prgi = (s->next_prgi + i) % IOPF_TESTDEV_PRG_COUNT;

        if (!s->groups[prgi].busy) {
            s->next_prgi = (prgi + 1) % IOPF_TESTDEV_PRG_COUNT;
            return prgi;
        }
    }
    return -1;
}

/* Send groups of pending pages while the allocation allows. */
static void iopf_testdev_send_groups(IopfTestdevState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t alloc = pcie_pri_get_req_alloc(pdev);
    uint32_t window = IOPF_TESTDEV_CTRL_WINDOW(s->regs[REG_CTRL]);
    bool writes = !iopf_testdev_reads(s);

    s->regs[REG_PRI_ALLOC] = alloc;
    if (window && window < alloc) {
        alloc = window;
    }
    while (s->pending_count) {
        uint32_t size = iopf_testdev_group_size(s);
        IopfTestdevGroup *group;
        uint32_t i, n;
        int prgi;

        if (alloc == 0) {
            /* PRI disabled, or no allocation granted: nothing can be sent */
            while (s->pending_count) {
                iopf_testdev_fail_page(s, iopf_testdev_pop_pending(s),
                                       IOPF_TESTDEV_FAIL_PRI);
            }
            return;
        }
        /* Fill a group before sending it while translations are left. */
        if (s->pending_count < size && s->xlate_count) {
            return;
        }
        n = MIN(MIN(size, alloc), s->pending_count);
        if (s->outstanding + n > alloc) {
            s->regs[REG_THROTTLED]++;
            return;
        }
        prgi = iopf_testdev_alloc_prgi(s);
        if (prgi < 0) {
            return;
        }
        s->group_turn++;

        group = &s->groups[prgi];
        group->pasid = s->regs[REG_PASID];
        group->npages = 0;
        group->sent_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
        for (i = 0; i < n; i++) {
            uint32_t page = iopf_testdev_pop_pending(s);
            int ret;

            ret = pci_pri_request_page(pdev, group->pasid, false, false,
                                       iopf_testdev_va(s, page), i == n - 1,
                                       prgi, true, writes);
            if (ret) {
                /*
                 * The IOMMU did not take the request. Earlier requests of
                 * this group stay at the IOMMU as a group without its last
                 * page; this group and its pages are given up.
                 */
                s->regs[REG_PR_ERRORS]++;
                iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_PRI);
                for (; i < n - 1; i++) {
                    iopf_testdev_fail_page(s, iopf_testdev_pop_pending(s),
                                           IOPF_TESTDEV_FAIL_PRI);
                }
                break;
            }
            s->page_state[page] = PAGE_IN_FLIGHT;
            group->pages[group->npages++] = page;
            s->prg[prgi].requests++;
            s->regs[REG_REQUESTS]++;
        }
        if (group->npages < n) {
            for (i = 0; i < group->npages; i++) {
                iopf_testdev_fail_page(s, group->pages[i],
                                       IOPF_TESTDEV_FAIL_PRI);
            }
            continue;
        }
        group->busy = true;
        s->prg[prgi].groups++;
        s->regs[REG_GROUPS]++;
        s->outstanding += n;
        s->regs[REG_OUTSTANDING] = s->outstanding;
        s->regs[REG_MAX_OUTSTANDING] = MAX(s->regs[REG_MAX_OUTSTANDING],
                                           s->outstanding);
    }
}

static void iopf_testdev_run(void *opaque)
{
    IopfTestdevState *s = opaque;
    int budget = IOPF_TESTDEV_BATCH;

    if (!iopf_testdev_busy(s)) {
        return;
    }
    if (s->aborting) {
        if (s->outstanding == 0) {
            iopf_testdev_finish(s, IOPF_TESTDEV_STATUS_ABORTED);
        }
        return;
    }
    while (budget-- && s->xlate_count) {
        uint32_t page = iopf_testdev_pop_xlate(s);

        if (!iopf_testdev_translate_and_dma(s, page)) {
            iopf_testdev_push_pending(s, page);
        }
    }
    iopf_testdev_send_groups(s);

    if (s->xlate_count) {
        qemu_bh_schedule(s->bh);
    } else if (s->pending_count == 0 && s->outstanding == 0) {
        iopf_testdev_finish(s, IOPF_TESTDEV_STATUS_DONE);
    }
}

/* A PRG Response Message for one of our PASIDs, from the IOMMU. */
static void iopf_testdev_pri_notify(IOMMUPRINotifier *notifier,
                                    IOMMUPRIResponse *response)
{
    IopfTestdevNotifier *n = container_of(notifier, IopfTestdevNotifier,
                                          notifier);
    IopfTestdevState *s = n->dev;
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t prgi = response->prgi & PCI_PRI_PRGI_MASK;
    IopfTestdevPrgCounters *c = &s->prg[prgi];
    IopfTestdevGroup *group = &s->groups[prgi];
    int64_t latency;
    uint32_t i;

    switch (response->response_code) {
    case IOMMU_PRI_RESP_SUCCESS:
        c->success++;
        s->regs[REG_RESP_SUCCESS]++;
        break;
    case IOMMU_PRI_RESP_INVALID_REQUEST:
        c->invalid++;
        s->regs[REG_RESP_INVALID]++;
        break;
    default:
        c->failure++;
        s->regs[REG_RESP_FAILURE]++;
        /* PCIe 10.4.2.2: the Function records the Response Failure */
        pci_word_test_and_set_mask(pdev->config + pdev->exp.pri_cap +
                                   PCI_PRI_STATUS, PCI_PRI_STATUS_RF);
        break;
    }

    if (!group->busy || group->pasid != n->pasid) {
        /* PCIe 10.4.2.2: Unexpected Page Request Group Index */
        c->unexpected++;
        s->regs[REG_RESP_UNEXPECTED]++;
        pci_word_test_and_set_mask(pdev->config + pdev->exp.pri_cap +
                                   PCI_PRI_STATUS, PCI_PRI_STATUS_UPRGI);
        return;
    }

    latency = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) - group->sent_ns;
    s->regs[REG_LATENCY_SUM_NS] += latency;
    s->regs[REG_LATENCY_MAX_NS] = MAX(s->regs[REG_LATENCY_MAX_NS], latency);
    group->busy = false;
    s->outstanding -= group->npages;
    s->regs[REG_OUTSTANDING] = s->outstanding;

    if (!s->page_state) {
        /* The job was cleared by a reset: only the counters remain. */
        return;
    }
    for (i = 0; i < group->npages; i++) {
        uint32_t page = group->pages[i];

        if (s->aborting) {
            iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_ABORTED);
        } else if (response->response_code == IOMMU_PRI_RESP_SUCCESS) {
            if (s->page_retries[page]++ >= IOPF_TESTDEV_MAX_RETRIES) {
                iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_RETRIES);
            } else {
                s->regs[REG_RETRIES]++;
                iopf_testdev_push_xlate(s, page);
            }
        } else if (response->response_code ==
                   IOMMU_PRI_RESP_INVALID_REQUEST) {
            iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_INVALID);
        } else {
            iopf_testdev_fail_page(s, page, IOPF_TESTDEV_FAIL_FAILURE);
        }
    }
    qemu_bh_schedule(s->bh);
}

static bool iopf_testdev_listen(IopfTestdevState *s, uint32_t pasid)
{
    IopfTestdevNotifier *n;

    if (g_hash_table_contains(s->notifiers, GUINT_TO_POINTER(pasid))) {
        return true;
    }
    n = g_new0(IopfTestdevNotifier, 1);
    n->notifier.notify = iopf_testdev_pri_notify;
    n->dev = s;
    n->pasid = pasid;
    if (pci_pri_register_notifier(PCI_DEVICE(s), pasid, &n->notifier)) {
        g_free(n);
        return false;
    }
    g_hash_table_insert(s->notifiers, GUINT_TO_POINTER(pasid), n);
    return true;
}

static void iopf_testdev_unlisten(gpointer key, gpointer value,
                                  gpointer opaque)
{
    IopfTestdevState *s = opaque;

    pci_pri_unregister_notifier(PCI_DEVICE(s), GPOINTER_TO_UINT(key));
}

static void iopf_testdev_start(IopfTestdevState *s)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    uint64_t addr = s->regs[REG_ADDR];
    uint64_t len = s->regs[REG_LEN];
    uint32_t pasid = s->regs[REG_PASID];
    uint32_t i;

    if (iopf_testdev_busy(s)) {
        return;
    }
    if (!len || (addr | len) & (IOPF_TESTDEV_PAGE - 1) ||
        len / IOPF_TESTDEV_PAGE > IOPF_TESTDEV_MAX_PAGES ||
        pasid > 0xfffff ||
        !pcie_ats_enabled(pdev) || !pcie_pasid_enabled(pdev) ||
        !iopf_testdev_listen(s, pasid)) {
        qemu_log_mask(LOG_GUEST_ERROR, "%s: job refused: addr 0x%" PRIx64
                      " len 0x%" PRIx64 " pasid %u ats %d pasid %d\n",
                      __func__, addr, len, pasid, pcie_ats_enabled(pdev),
                      pcie_pasid_enabled(pdev));
        s->regs[REG_STATUS] = IOPF_TESTDEV_STATUS_REFUSED;
        return;
    }

    s->npages = len / IOPF_TESTDEV_PAGE;
    s->page_state = g_new0(uint8_t, s->npages);
    s->page_retries = g_new0(uint8_t, s->npages);
    s->xlate = g_new(uint32_t, s->npages);
    s->pending = g_new(uint32_t, s->npages);
    s->xlate_head = 0;
    s->xlate_count = 0;
    s->pending_head = 0;
    s->pending_count = 0;
    s->group_turn = 0;
    s->aborting = false;
    for (i = 0; i < s->npages; i++) {
        iopf_testdev_push_xlate(s, i);
    }
    s->regs[REG_FAIL_CODE] = IOPF_TESTDEV_FAIL_NONE;
    s->regs[REG_FAIL_ADDR] = 0;
    s->job_start_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    s->regs[REG_STATUS] = IOPF_TESTDEV_STATUS_BUSY;
    qemu_bh_schedule(s->bh);
}

/*
 * Stop issuing translations and page requests. The groups in flight keep
 * their indexes until their responses arrive; the job ends with the last
 * of them.
 */
static void iopf_testdev_abort(IopfTestdevState *s)
{
    if (!iopf_testdev_busy(s) || s->aborting) {
        return;
    }
    s->aborting = true;
    while (s->xlate_count) {
        iopf_testdev_fail_page(s, iopf_testdev_pop_xlate(s),
                               IOPF_TESTDEV_FAIL_ABORTED);
    }
    while (s->pending_count) {
        iopf_testdev_fail_page(s, iopf_testdev_pop_pending(s),
                               IOPF_TESTDEV_FAIL_ABORTED);
    }
    qemu_bh_schedule(s->bh);
}

static void iopf_testdev_clear(IopfTestdevState *s)
{
    if (iopf_testdev_busy(s) || s->outstanding) {
        return;
    }
    memset(&s->regs[IOPF_TESTDEV_FIRST_COUNTER], 0,
           sizeof(s->regs[0]) * (REG_COUNT - IOPF_TESTDEV_FIRST_COUNTER));
    memset(s->prg, 0, sizeof(s->prg));
}

static uint64_t iopf_testdev_mmio_read(void *opaque, hwaddr addr,
                                       unsigned size)
{
    IopfTestdevState *s = opaque;
    uint64_t val;

    if (addr >= IOPF_TESTDEV_PRG_BASE) {
        hwaddr off = addr - IOPF_TESTDEV_PRG_BASE;
        uint32_t *words;
        unsigned word = (off % IOPF_TESTDEV_PRG_STRIDE) / 4;

        if (off / IOPF_TESTDEV_PRG_STRIDE >= IOPF_TESTDEV_PRG_COUNT) {
            return 0;
        }
        words = (uint32_t *)&s->prg[off / IOPF_TESTDEV_PRG_STRIDE];
        val = words[word];
        if (size == 8 && word + 1 < IOPF_TESTDEV_PRG_STRIDE / 4) {
            val |= (uint64_t)words[word + 1] << 32;
        }
        return val;
    }
    if (addr / 8 >= REG_COUNT) {
        return 0;
    }
    s->regs[REG_PRI_ALLOC] = pcie_pri_get_req_alloc(PCI_DEVICE(s));
    val = s->regs[addr / 8];
    if (addr % 8) {
        val >>= 32;
    }
    return size == 4 ? (uint32_t)val : val;
}

static void iopf_testdev_mmio_write(void *opaque, hwaddr addr, uint64_t val,
                                    unsigned size)
{
    IopfTestdevState *s = opaque;
    IopfTestdevReg reg = addr / 8;
    uint64_t old;

    switch (reg) {
    case REG_PASID:
    case REG_ADDR:
    case REG_LEN:
    case REG_SEED:
    case REG_CTRL:
        if (iopf_testdev_busy(s)) {
            qemu_log_mask(LOG_GUEST_ERROR, "%s: register 0x%" HWADDR_PRIx
                          " written while busy\n", __func__, addr);
            return;
        }
        old = s->regs[reg];
        if (size == 4) {
            if (addr % 8) {
                val = (old & 0xffffffffULL) | (val << 32);
            } else {
                val = (old & ~0xffffffffULL) | (uint32_t)val;
            }
        }
        s->regs[reg] = val;
        break;
    case REG_CMD:
        switch (val) {
        case IOPF_TESTDEV_CMD_START:
            iopf_testdev_start(s);
            break;
        case IOPF_TESTDEV_CMD_ABORT:
            iopf_testdev_abort(s);
            break;
        case IOPF_TESTDEV_CMD_CLEAR:
            iopf_testdev_clear(s);
            break;
        default:
            qemu_log_mask(LOG_GUEST_ERROR, "%s: unknown command %" PRIu64
                          "\n", __func__, val);
            break;
        }
        break;
    default:
        qemu_log_mask(LOG_GUEST_ERROR, "%s: read-only register 0x%"
                      HWADDR_PRIx "\n", __func__, addr);
        break;
    }
}

static const MemoryRegionOps iopf_testdev_mmio_ops = {
    .read = iopf_testdev_mmio_read,
    .write = iopf_testdev_mmio_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
    .impl = {
        .min_access_size = 4,
        .max_access_size = 8,
    },
};

/*
 * PRI control: the Stopped bit is set while PRI is disabled and no page
 * request is in flight; Reset, written with Enable clear, clears the
 * Response Failure and Unexpected PRG Index status (PCIe 10.5.2.2/3).
 */
static void iopf_testdev_write_config(PCIDevice *pdev, uint32_t addr,
                                      uint32_t val, int len)
{
    IopfTestdevState *s = IOPF_TESTDEV(pdev);
    uint16_t pri = pdev->exp.pri_cap;
    uint16_t ctrl;

    pci_default_write_config(pdev, addr, val, len);
    if (!ranges_overlap(addr, len, pri + PCI_PRI_CTRL, 2)) {
        return;
    }
    ctrl = pci_get_word(pdev->config + pri + PCI_PRI_CTRL);
    if (ctrl & PCI_PRI_CTRL_ENABLE) {
        pci_word_test_and_clear_mask(pdev->config + pri + PCI_PRI_STATUS,
                                     PCI_PRI_STATUS_STOPPED);
    } else {
        if (ctrl & PCI_PRI_CTRL_RESET) {
            pci_word_test_and_clear_mask(pdev->config + pri + PCI_PRI_STATUS,
                                         PCI_PRI_STATUS_RF |
                                         PCI_PRI_STATUS_UPRGI);
        }
        if (s->outstanding == 0) {
            pci_word_test_and_set_mask(pdev->config + pri + PCI_PRI_STATUS,
                                       PCI_PRI_STATUS_STOPPED);
        }
    }
    /* Reset reads as zero */
    pci_word_test_and_clear_mask(pdev->config + pri + PCI_PRI_CTRL,
                                 PCI_PRI_CTRL_RESET);
}

static void iopf_testdev_realize(PCIDevice *pdev, Error **errp)
{
    IopfTestdevState *s = IOPF_TESTDEV(pdev);

    if (!s->pri_capacity || s->pri_capacity > 0xffff) {
        error_setg(errp, "pri-capacity must be within 1..65535");
        return;
    }
    if (pcie_endpoint_cap_init(pdev, IOPF_TESTDEV_PCIE_CAP) < 0) {
        error_setg(errp, "cannot add the PCI Express capability");
        return;
    }
    pcie_ats_init(pdev, IOPF_TESTDEV_ATS_CAP, true);
    pcie_pasid_init(pdev, IOPF_TESTDEV_PASID_CAP, PCI_EXT_CAP_PASID_MAX_WIDTH,
                    false, false);
    pcie_pri_init(pdev, IOPF_TESTDEV_PRI_CAP, s->pri_capacity, true);
    pdev->config_write = iopf_testdev_write_config;

    memory_region_init_io(&s->mmio, OBJECT(s), &iopf_testdev_mmio_ops, s,
                          "iopf-testdev-mmio", IOPF_TESTDEV_MMIO_SIZE);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->mmio);

    s->bh = qemu_bh_new_guarded(iopf_testdev_run, s,
                                &DEVICE(s)->mem_reentrancy_guard);
    s->notifiers = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                         NULL, g_free);
    s->regs[REG_ID] = IOPF_TESTDEV_ID;
    s->regs[REG_CAPS] = s->pri_capacity |
                        (uint64_t)IOPF_TESTDEV_MAX_GROUP << 16 |
                        (uint64_t)IOPF_TESTDEV_MAX_PAGES << 32;
}

static void iopf_testdev_exit(PCIDevice *pdev)
{
    IopfTestdevState *s = IOPF_TESTDEV(pdev);

    g_hash_table_foreach(s->notifiers, iopf_testdev_unlisten, s);
    g_hash_table_destroy(s->notifiers);
    qemu_bh_delete(s->bh);
    iopf_testdev_free_job(s);
    pcie_cap_exit(pdev);
}

static void iopf_testdev_reset_hold(Object *obj, ResetType type)
{
    IopfTestdevState *s = IOPF_TESTDEV(obj);
    uint64_t id = s->regs[REG_ID];
    uint64_t caps = s->regs[REG_CAPS];

    iopf_testdev_free_job(s);
    s->aborting = false;
    s->outstanding = 0;
    s->next_prgi = 0;
    memset(s->groups, 0, sizeof(s->groups));
    memset(s->prg, 0, sizeof(s->prg));
    memset(s->regs, 0, sizeof(s->regs));
    s->regs[REG_ID] = id;
    s->regs[REG_CAPS] = caps;
}

static const Property iopf_testdev_properties[] = {
    DEFINE_PROP_UINT32("pri-capacity", IopfTestdevState, pri_capacity, 256),
};

static const VMStateDescription iopf_testdev_vmstate = {
    .name = TYPE_IOPF_TESTDEV,
    .unmigratable = 1,
};

static void iopf_testdev_class_init(ObjectClass *klass, const void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = iopf_testdev_realize;
    k->exit = iopf_testdev_exit;
    k->vendor_id = PCI_VENDOR_ID_REDHAT_QUMRANET;
    k->device_id = IOPF_TESTDEV_DEVICE_ID;
    k->revision = 1;
    k->class_id = PCI_CLASS_OTHERS;
    rc->phases.hold = iopf_testdev_reset_hold;
    dc->desc = "PCIe test device: I/O page faults through ATS and PRI";
    dc->vmsd = &iopf_testdev_vmstate;
    device_class_set_props(dc, iopf_testdev_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo iopf_testdev_types[] = {
    {
        .name          = TYPE_IOPF_TESTDEV,
        .parent        = TYPE_PCI_DEVICE,
        .instance_size = sizeof(IopfTestdevState),
        .class_init    = iopf_testdev_class_init,
        .interfaces    = (const InterfaceInfo[]) {
            { INTERFACE_PCIE_DEVICE },
            { },
        },
    },
};

DEFINE_TYPES(iopf_testdev_types)
