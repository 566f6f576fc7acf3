/* The handler scripts of the host's directory: immutable, refcounted catalogs
 * of scripts (each checked once in a throwaway state), directory scans,
 * reload, and the public look-ups on the current catalog. */
#include "internal.h"

#include <jetsched/log.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void script_release(script *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->src);
    free(s->error);
    free(s);
}

void lh_catalog_release(catalog *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    for (size_t i = 0; i < c->n; i++)
        script_release(c->v[i]);
    free(c->v);
    free(c);
}

script *lh_catalog_find(const catalog *c, const char *name)
{
    size_t lo = 0, hi = c ? c->n : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(name, c->v[mid]->name);
        if (r == 0)
            return c->v[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- checking and scanning scripts ---- */

/* Compiles s and runs its main chunk in a throwaway state: NULL when it is
 * runnable, else a malloc'd message. */
static char *check_script(const lua_host_options *opt, const script *s)
{
    char msg[MSG_MAX];
    lua_worker *w = calloc(1, sizeof *w);
    if (!w)
        return strdup("out of memory");
    w->check_only = true;
    lh_cstack_init(w);
    w->L = lh_state_new(w, opt->mem_limit_bytes, msg, sizeof msg);
    if (!w->L) {
        free(w);
        return strdup(msg);
    }
    lh_worker_reset_task(w);
    w->scr = s;
    w->time_limit_ms = opt->load_timeout_ms;
    lh_run_in_state(w, opt->instruction_check_interval);
    char *res = NULL;
    if (w->decided)
        res = strdup(w->msg);
    else if (w->tripped || w->errmem)
        snprintf(msg, sizeof msg, "%s.lua: memory limit exceeded while loading (%zu bytes per Lua state)", s->name,
                 w->limit),
            res = strdup(msg);
    else if (w->errored)
        res = strdup(w->err);
    lh_state_close(w, w->L);
    free(w);
    return res;
}

static char *read_script(const char *dir, const char *file, size_t *len, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", file);
        close(fd);
        return NULL;
    }
    if ((uintmax_t)sb.st_size > MAX_SCRIPT_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", file, MAX_SCRIPT_BYTES);
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap - 1) { /* the file grew while we read it */
            if (cap > MAX_SCRIPT_BYTES) {
                snprintf(err, errlen, "%s: larger than %u bytes", file, MAX_SCRIPT_BYTES);
                free(buf);
                buf = NULL;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf && !err[0])
        snprintf(err, errlen, "%s: out of memory", file);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Builds a catalog of dir's scripts, reusing the script objects of `old`
 * whose text is unchanged. */
jet_status lh_scan_dir(lua_host *h, const catalog *old, catalog **out, lh_scan_counts *cnt, jet_err *err)
{
    const lua_host_options *opt = &h->opt;
    memset(cnt, 0, sizeof *cnt);
    catalog *c = calloc(1, sizeof *c);
    if (!c)
        return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    atomic_init(&c->refs, 1);
    char **names = NULL;
    size_t nn = 0, capn = 0;
    DIR *d = opendir(opt->dir);
    if (!d && errno != ENOENT) {
        int e = errno;
        free(c);
        return jet_err_set(err, JET_ERR_IO, "agent.lua_dir %s: %s", opt->dir, strerror(e));
    }
    if (!d)
        jet_warn("agent.lua_dir %s does not exist: no Lua handlers", opt->dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l <= 4 || strcmp(de->d_name + l - 4, ".lua") != 0)
            continue;
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)(l - 4), de->d_name);
        if (!jet_name_valid(base)) {
            jet_warn("%s/%s: skipped: \"%s\" is not a valid handler name (1-64 of [a-z0-9_-])", opt->dir,
                     de->d_name, base);
            continue;
        }
        if (nn == capn) {
            size_t ncap = capn ? capn * 2 : 16;
            char **nv = realloc(names, ncap * sizeof *nv);
            if (!nv)
                break;
            names = nv;
            capn = ncap;
        }
        if (!(names[nn] = strdup(base)))
            break;
        nn++;
    }
    if (d)
        closedir(d);
    if (nn)
        qsort(names, nn, sizeof *names, cmp_str);
    c->v = calloc(nn ? nn : 1, sizeof *c->v);
    jet_status st = c->v ? JET_OK : jet_err_set(err, JET_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == JET_OK && i < nn; i++) {
        char file[JET_NAME_MAX + 8], rerr[512] = "";
        snprintf(file, sizeof file, "%s.lua", names[i]);
        size_t len = 0;
        char *src = read_script(opt->dir, file, &len, rerr, sizeof rerr);
        script *prev = lh_catalog_find(old, names[i]);
        if (prev && src && prev->src && prev->len == len && memcmp(prev->src, src, len) == 0) {
            free(src);
            atomic_fetch_add(&prev->refs, 1);
            c->v[c->n++] = prev;
            cnt->unavailable += prev->error != NULL;
            continue;
        }
        script *s = calloc(1, sizeof *s);
        if (!s) {
            free(src);
            st = jet_err_set(err, JET_ERR_NOMEM, "out of memory");
            break;
        }
        atomic_init(&s->refs, 1);
        snprintf(s->name, sizeof s->name, "%s", names[i]);
        snprintf(s->chunkname, sizeof s->chunkname, "@%s.lua", names[i]);
        s->version = atomic_fetch_add(&h->next_version, 1);
        s->src = src;
        s->len = len;
        s->error = src ? check_script(opt, s) : strdup(rerr);
        if (s->error)
            jet_warn("Lua handler %s is unavailable: %s", s->name, s->error);
        cnt->unavailable += s->error != NULL;
        if (prev)
            cnt->changed++;
        else
            cnt->added++;
        c->v[c->n++] = s;
    }
    for (size_t i = 0; old && i < old->n; i++)
        if (!lh_catalog_find(c, old->v[i]->name))
            cnt->removed++;
    for (size_t i = 0; i < nn; i++)
        free(names[i]);
    free(names);
    if (st != JET_OK) {
        lh_catalog_release(c);
        return st;
    }
    c->gen = old ? old->gen + 1 : 1;
    *out = c;
    return JET_OK;
}

catalog *lh_host_catalog(lua_host *h)
{
    pthread_mutex_lock(&h->mu);
    catalog *c = h->cat;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&h->mu);
    return c;
}

jet_status lua_host_reload(lua_host *h, jet_err *err) { return lua_host_reload_from(h, NULL, err); }

jet_status lua_host_reload_from(lua_host *h, const char *dir, jet_err *err)
{
    pthread_mutex_lock(&h->reload_mu);
    if (dir && *dir && strcmp(dir, h->dir) != 0) {
        char *nd = strdup(dir);
        if (!nd) {
            pthread_mutex_unlock(&h->reload_mu);
            return jet_err_set(err, JET_ERR_NOMEM, "out of memory");
        }
        jet_info("Lua handlers: agent.lua_dir changed from %s to %s", h->dir, nd);
        free(h->dir);
        h->dir = nd;
        h->opt.dir = nd;
    }
    catalog *old = lh_host_catalog(h), *c = NULL;
    lh_scan_counts cnt;
    jet_status st = lh_scan_dir(h, old, &c, &cnt, err);
    if (st == JET_OK) {
        pthread_mutex_lock(&h->mu);
        catalog *prev = h->cat;
        h->cat = c;
        atomic_store(&h->gen, c->gen);
        pthread_mutex_unlock(&h->mu);
        lh_catalog_release(prev);
        atomic_fetch_add(&h->st.reloads, 1);
        jet_info("Lua handlers reloaded from %s: %zu script(s): %zu new, %zu changed, %zu removed, %zu unavailable",
                 h->dir, c->n, cnt.added, cnt.changed, cnt.removed, cnt.unavailable);
    }
    lh_catalog_release(old);
    pthread_mutex_unlock(&h->reload_mu);
    return st;
}

bool lua_host_has(lua_host *h, const char *handler)
{
    if (!h || !handler)
        return false;
    pthread_mutex_lock(&h->mu);
    const script *s = lh_catalog_find(h->cat, handler);
    bool ok = s && !s->error;
    pthread_mutex_unlock(&h->mu);
    return ok;
}

bool lua_host_unavailable(lua_host *h, const char *handler, char *why, size_t len)
{
    if (!h || !handler)
        return false;
    pthread_mutex_lock(&h->mu);
    const script *s = lh_catalog_find(h->cat, handler);
    bool bad = s && s->error;
    if (bad && why && len)
        snprintf(why, len, "%s", s->error);
    pthread_mutex_unlock(&h->mu);
    return bad;
}

size_t lua_host_count(lua_host *h)
{
    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    size_t n = h->cat->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

bool lua_host_name_at(lua_host *h, size_t i, char *buf, size_t len)
{
    if (!h)
        return false;
    pthread_mutex_lock(&h->mu);
    bool ok = i < h->cat->n;
    if (ok && buf && len)
        snprintf(buf, len, "%s", h->cat->v[i]->name);
    pthread_mutex_unlock(&h->mu);
    return ok;
}

void lua_host_foreach(lua_host *h, void (*fn)(const char *name, bool available, void *closure), void *closure)
{
    if (!h || !fn)
        return;
    catalog *c = lh_host_catalog(h);
    for (size_t i = 0; i < c->n; i++)
        fn(c->v[i]->name, c->v[i]->error == NULL, closure);
    lh_catalog_release(c);
}

