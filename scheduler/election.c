/* Leader election on the JetStream KV bucket <prefix>_leader (DESIGN §5,
 * reference/nats-platform.md §2):
 *   - candidate: kvStore_Create("schedulerd", value) every TTL/3 (±10 %);
 *     success = leadership, the returned revision is the epoch; after a
 *     failed Create it reads the holder's entry and tries again right after
 *     that entry expires (its server timestamp + TTL), then every 50 ms for
 *     up to a second, so a standby takes over within ~50 ms of the expiry
 *     instead of up to TTL/3 later;
 *   - leader: kvStore_Update(value, last revision) every TTL/3; the lease
 *     ends at our own monotonic deadline = send time of the last successful
 *     write + TTL - margin, whether or not a renewal fails;
 *   - an ambiguous outcome (timeout) is resolved by reading the key back and
 *     comparing it with this incarnation's value (which carries a nonce);
 *   - on shutdown: a conditional delete (Nats-Expected-Last-Subject-Sequence
 *     = our revision), so we never delete a newer leader's key.
 * The KV lock is advisory: leader.c fences every write with the epoch in
 * PostgreSQL. */
#include "schedulerd.h"

#include <jetsched/log.h>
#include <jetsched/natsconn.h>
#include <jetsched/timeutil.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static kvStore *kv;
static uint64_t held_rev;    /* revision of our last successful write (election thread only) */
static int64_t expiry_mono; /* a candidate's estimate of when the holder's entry expires (0: unknown) */

static int64_t margin_ms(const sched *s)
{
    int64_t m = s->ttl_ms / 6;
    return m > 2000 ? 2000 : m;
}

static int64_t interval_ms(const sched *s)
{
    int64_t base = s->ttl_ms / 3;
    int64_t jitter = base / 10;
    return base - jitter + (jitter > 0 ? (int64_t)(random() % (2 * jitter + 1)) : 0);
}

bool election_holds(sched *s, uint64_t *rev)
{
    uint64_t r = atomic_load(&s->won_rev);
    if (rev)
        *rev = r;
    return r != 0 && jet_mono_ms() < atomic_load(&s->deadline_mono);
}

/* Reads the key back after an ambiguous write. Returns its revision when it
 * holds this incarnation's value, else 0; then expiry_mono estimates when
 * the entry found expires (the bucket's max age is the TTL), now when there
 * is none. */
static uint64_t read_back(sched *s)
{
    kvEntry *e = NULL;
    uint64_t rev = 0;
    expiry_mono = 0;
    natsStatus st = kvStore_Get(&e, kv, SCHED_LEADER_KEY);
    if (st == NATS_NOT_FOUND)
        expiry_mono = jet_mono_ms();
    if (st == NATS_OK && e) {
        const char *v = kvEntry_ValueString(e);
        if (kvEntry_Operation(e) == kvOp_Put && v && strcmp(v, s->value) == 0)
            rev = kvEntry_Revision(e);
        else if (kvEntry_Operation(e) == kvOp_Put)
            expiry_mono = jet_mono_ms() + (kvEntry_Created(e) / 1000000 + s->ttl_ms - jet_now_ms());
        else
            expiry_mono = jet_mono_ms();
    }
    kvEntry_Destroy(e);
    return rev;
}

static void lose(sched *s, const char *why)
{
    if (atomic_load(&s->won_rev) != 0)
        jet_warn("election: lost leadership (epoch %llu): %s; stepping down",
                 (unsigned long long)atomic_load(&s->won_rev), why);
    atomic_store(&s->won_rev, 0);
    atomic_store(&s->deadline_mono, 0);
    held_rev = 0;
}

static void campaign(sched *s)
{
    uint64_t rev = 0;
    int64_t sent = jet_mono_ms();
    natsStatus st = kvStore_CreateString(&rev, kv, SCHED_LEADER_KEY, s->value);
    if (st != NATS_OK) {
        /* "wrong last sequence" = someone holds it; anything else may be an
         * ambiguous outcome: the server may have stored our value. */
        rev = read_back(s);
        if (rev == 0)
            return;
        jet_info("election: create reported %s but the key holds our value", natsStatus_GetText(st));
    }
    held_rev = rev;
    atomic_store(&s->deadline_mono, sent + s->ttl_ms - margin_ms(s));
    atomic_store(&s->abdicate, false);
    atomic_store(&s->won_rev, rev);
    stats_leader_won();
    jet_info("election: won leadership of %s/%s with revision %llu (epoch candidate); lease %lld ms",
             s->names.kv_leader, SCHED_LEADER_KEY, (unsigned long long)rev, (long long)s->ttl_ms);
}

static void renew(sched *s)
{
    uint64_t rev = 0;
    int64_t sent = jet_mono_ms();
    if (sent >= atomic_load(&s->deadline_mono)) {
        /* We are past our own deadline (e.g. the process was paused): the
         * key may belong to someone else by now; the leader thread has already
         * stopped acting. A successful Update below would still be valid
         * (CAS on our revision) but we start over cleanly. */
        lose(s, "lease deadline passed before renewal (process paused or renewals too slow)");
        return;
    }
    natsStatus st = kvStore_UpdateString(&rev, kv, SCHED_LEADER_KEY, s->value, held_rev);
    if (st != NATS_OK) {
        char why[300];
        snprintf(why, sizeof why, "renewal failed: %s: %s", natsStatus_GetText(st), nats_GetLastError(NULL));
        rev = read_back(s);
        if (rev == 0 || rev < held_rev) {
            lose(s, why);
            return;
        }
        jet_info("election: renewal reported %s but the key holds our value", natsStatus_GetText(st));
    }
    held_rev = rev;
    atomic_store(&s->deadline_mono, sent + s->ttl_ms - margin_ms(s));
}

static void *election_main(void *arg)
{
    sched *s = arg;
    /* Start-up splay: a few hundred ms so that instances started together
     * do not all campaign in the same instant. */
    int64_t next = jet_mono_ms() + random() % 300;
    while (!atomic_load(&s->stop)) {
        if (atomic_load(&s->won_rev) != 0 && atomic_load(&s->abdicate)) {
            lose(s, "fenced out by a newer epoch in PostgreSQL");
            next = jet_mono_ms() + s->ttl_ms; /* let the key expire before campaigning */
            continue;
        }
        if (jet_mono_ms() < next) {
            jet_sleep_ms(20);
            continue;
        }
        if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
            /* No KV call can succeed; a leader's deadline runs out on its own. */
            if (atomic_load(&s->won_rev) != 0 && jet_mono_ms() >= atomic_load(&s->deadline_mono))
                lose(s, "disconnected from NATS past the lease deadline");
            next = jet_mono_ms() + 100;
            continue;
        }
        bool candidate = atomic_load(&s->won_rev) == 0;
        if (candidate)
            campaign(s);
        else
            renew(s);
        int64_t now = jet_mono_ms();
        next = now + interval_ms(s);
        if (candidate && atomic_load(&s->won_rev) == 0 && expiry_mono > 0 && now < expiry_mono + 1000) {
            /* the holder's entry expires soon: try right after it */
            int64_t at = expiry_mono + 20 > now + 50 ? expiry_mono + 20 : now + 50;
            if (at < next)
                next = at;
        }
    }
    return NULL;
}

jet_status election_start(sched *s, jet_err *err)
{
    natsStatus st = js_KeyValue(&kv, s->js, s->names.kv_leader);
    if (st != NATS_OK)
        return jet_nats_err(err, st, s->names.kv_leader);
    srandom((unsigned)(jet_mono_ms() ^ (int64_t)getpid()));
    if (pthread_create(&s->election_thread, NULL, election_main, s) != 0)
        return jet_err_set(err, JET_ERR_INTERNAL, "cannot start the election thread");
    return JET_OK;
}

void election_stop(sched *s)
{
    if (!kv)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->election_thread, NULL);
    if (atomic_load(&s->won_rev) != 0 && held_rev != 0) {
        /* Conditional delete: a DEL tombstone accepted only if the key is
         * still at our revision. */
        char subject[200];
        snprintf(subject, sizeof subject, "$KV.%s.%s", s->names.kv_leader, SCHED_LEADER_KEY);
        natsMsg *m = NULL;
        natsMsg_Create(&m, subject, NULL, NULL, 0);
        natsMsgHeader_Set(m, "KV-Operation", "DEL");
        char rev[32];
        snprintf(rev, sizeof rev, "%llu", (unsigned long long)held_rev);
        natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", rev);
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        natsStatus st = js_PublishMsg(&pa, s->js, m, NULL, &jerr);
        if (st == NATS_OK)
            jet_info("election: resigned (deleted %s/%s at revision %s)", s->names.kv_leader, SCHED_LEADER_KEY, rev);
        else
            jet_warn("election: resign failed (%s, %d); the key expires after the TTL", natsStatus_GetText(st),
                     (int)jerr);
        jsPubAck_Destroy(pa);
        natsMsg_Destroy(m);
    }
    atomic_store(&s->won_rev, 0);
    kvStore_Destroy(kv);
    kv = NULL;
}
