/* ULID generation: monotonic within a millisecond, random from getrandom(2). */
#include <jetsched/ids.h>
#include <jetsched/timeutil.h>

#include <pthread.h>
#include <string.h>
#include <sys/random.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static pthread_mutex_t ulid_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1;
static uint8_t last_rand[10];

void jet_ulid_new(char buf[JET_ULID_LEN + 1])
{
    uint8_t bytes[16];
    pthread_mutex_lock(&ulid_mu);
    int64_t ms = jet_now_ms();
    if (ms <= last_ms) {
        /* Same (or earlier: clock step) millisecond: increment the random part. */
        ms = last_ms;
        for (int i = 9; i >= 0 && ++last_rand[i] == 0; i--) {
        }
    } else {
        if (getrandom(last_rand, sizeof last_rand, 0) != (ssize_t)sizeof last_rand)
            for (int i = 0; i < 10; i++)
                last_rand[i] = (uint8_t)(jet_mono_ms() >> (i % 8));
        last_rand[0] &= 0x7f; /* leave room for increments */
        last_ms = ms;
    }
    for (int i = 0; i < 6; i++)
        bytes[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    memcpy(bytes + 6, last_rand, 10);
    pthread_mutex_unlock(&ulid_mu);
    /* 128 bits -> 26 base32 characters (the first carries 3 bits). */
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++)
        v = (v << 8) | bytes[i];
    for (int i = JET_ULID_LEN - 1; i >= 0; i--) {
        buf[i] = crockford[(unsigned)(v & 31)];
        v >>= 5;
    }
    buf[JET_ULID_LEN] = '\0';
}

int64_t jet_ulid_time(const char *s)
{
    if (!s || strlen(s) != JET_ULID_LEN)
        return -1;
    int64_t ms = 0;
    for (int i = 0; i < 10; i++) {
        const char *p = strchr(crockford, s[i]);
        if (!p || !*p)
            return -1;
        ms = (ms << 5) | (p - crockford);
    }
    return ms;
}
