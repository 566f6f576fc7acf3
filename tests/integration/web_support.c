/* Support for the web listener tests; see web_support.h. */
#include "web_support.h"
#include "harness.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "FATAL: cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

static char listen_host[64] = "127.0.0.1";

void wt_listen_host(const char *host) { snprintf(listen_host, sizeof listen_host, "%s", host); }

void wt_start(wt_server *w, const char *id, const char *root, const char *web_extra, const char *conf_extra)
{
    char *dir = th_tmpdir();
    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    free(dir);
    snprintf(w->viewer, sizeof w->viewer, "viewer-%s-0123456789abcdef", id);
    snprintf(w->operator_, sizeof w->operator_, "operator-%s-fedcba9876543210", id);
    char path[700], conf[8192];
    snprintf(path, sizeof path, "%s/viewer.token", w->dir);
    write_file(path, w->viewer);
    snprintf(path, sizeof path, "%s/operator.token", w->dir);
    write_file(path, w->operator_);
    snprintf(path, sizeof path, "%s/session.key", w->dir);
    write_file(path, "0123456789abcdef0123456789abcdef-shared-by-every-schedulerd\n");
    w->port = th_free_port();
    snprintf(w->scheme, sizeof w->scheme, "%s", strstr(web_extra ? web_extra : "", "tls_cert") ? "https" : "http");
    snprintf(conf, sizeof conf,
             "web = { listen = \"%s:%d\"; root = \"%s\"; session_secret_file = \"%s/session.key\";\n"
             "  tokens = ( { name = \"watcher\"; role = \"viewer\"; file = \"%s/viewer.token\"; },\n"
             "             { name = \"ops\"; role = \"operator\"; file = \"%s/operator.token\"; } );\n"
             "  %s };\n%s\n",
             listen_host, w->port, root ? root : "/nonexistent", w->dir, w->dir, w->dir, web_extra ? web_extra : "",
             conf_extra ? conf_extra : "");
    ss_start(&w->s, id, conf);
}

static size_t on_data(char *p, size_t size, size_t n, void *cls)
{
    wt_resp *r = cls;
    size_t len = size * n;
    r->body = realloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *cls)
{
    char **h = cls;
    size_t old = *h ? strlen(*h) : 0, len = size * n;
    *h = realloc(*h, old + len + 1);
    memcpy(*h + old, p, len);
    (*h)[old + len] = '\0';
    return len;
}

wt_resp *wt_req(wt_server *w, const char *method, const char *path, const char *body, const char *auth,
                const char *const *headers)
{
    char url[16384];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", w->scheme, w->port, path);
    wt_record(method, path);
    wt_resp *r = calloc(1, sizeof *r);
    r->body = strdup("");
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    char line[512];
    if (auth && !strcmp(auth, "viewer")) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", w->viewer);
        hl = curl_slist_append(hl, line);
    } else if (auth && !strcmp(auth, "operator")) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", w->operator_);
        hl = curl_slist_append(hl, line);
    } else if (auth && !strncmp(auth, "cookie:", 7)) {
        curl_easy_setopt(c, CURLOPT_COOKIE, auth + 7);
    } else if (auth) {
        snprintf(line, sizeof line, "Authorization: %s", auth);
        hl = curl_slist_append(hl, line);
    }
    if (body)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (w->cafile[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, w->cafile);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        r->status = -(long)rc;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (!r->headers)
        r->headers = strdup("");
    r->json = json_loadb(r->body, r->len, 0, NULL);
    return r;
}

void wt_free(wt_resp *r)
{
    if (!r)
        return;
    json_decref(r->json);
    free(r->body);
    free(r->headers);
    free(r);
}

const char *wt_header(const wt_resp *r, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, len, "%.*s", (int)(eol - v), v);
            return buf;
        }
        p = eol + 2;
    }
    return NULL;
}

void wt_expect(wt_resp *r, long status, const char *code, const char *field, const char *what)
{
    CHECK(r->status == status, "%s: HTTP %ld expected, got %ld: %.300s", what, status, r->status, r->body);
    if (code) {
        CHECK(r->json && !strcmp(sa_code(r->json), code), "%s: error code %s expected: %.300s", what, code, r->body);
        if (field)
            CHECK(r->json && !strcmp(sa_field(r->json), field), "%s: field %s expected: %.300s", what, field, r->body);
    } else if (status < 300) {
        CHECK(r->json && !json_object_get(r->json, "error"), "%s: a JSON reply without error: %.300s", what,
              r->body);
    }
    wt_free(r);
}

double wt_metric_sum(const wt_server *w, const char *name)
{
    static char buf[1 << 18];
    if (ts_agent_http(&w->s, "/metrics", buf, sizeof buf) != 200)
        return -1;
    size_t nl = strlen(name);
    double sum = 0;
    for (char *p = buf; (p = strstr(p, name)) != NULL; p += nl)
        if ((p == buf || p[-1] == '\n') && (p[nl] == ' ' || p[nl] == '{')) {
            char *sp = strchr(p, ' ');
            sum += sp ? atof(sp + 1) : 0;
        }
    return sum;
}

/* ---------------- route coverage ---------------- */

static char *requested[1024];
static int nrequested;

void wt_record(const char *method, const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s %s", method, path);
    char *q = strchr(buf, '?');
    if (q)
        *q = '\0';
    for (int i = 0; i < nrequested; i++)
        if (!strcmp(requested[i], buf))
            return;
    if (nrequested < 1024)
        requested[nrequested++] = strdup(buf);
}

/* Does "METHOD /a/b/c" match "METHOD /a/{x}/c"? */
static bool template_match(const char *tmpl, const char *req)
{
    while (*tmpl && *req) {
        if (*tmpl == '{') {
            tmpl = strchr(tmpl, '}');
            if (!tmpl)
                return false;
            tmpl++;
            if (*req == '/' || !*req)
                return false;
            while (*req && *req != '/')
                req++;
            continue;
        }
        if (*tmpl++ != *req++)
            return false;
    }
    return !*tmpl && !*req;
}

json_t *wt_operations(const json_t *openapi)
{
    json_t *ops = json_object();
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(openapi, "paths"), path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            char key[512];
            snprintf(key, sizeof key, "%s %s", method, path);
            for (char *p = key; *p != ' '; p++)
                *p = (char)(*p & ~0x20);
            json_object_set(ops, key, op);
        }
    }
    return ops;
}

void wt_check_coverage(const json_t *openapi)
{
    json_t *ops = wt_operations(openapi), *op;
    const char *key;
    json_object_foreach(ops, key, op) {
        bool hit = false;
        for (int i = 0; i < nrequested && !hit; i++)
            hit = template_match(key, requested[i]);
        CHECK(hit, "route %s (%s) was exercised by this test", key,
              json_string_value(json_object_get(op, "operationId")));
    }
    CHECK(json_object_size(ops) >= 25, "the OpenAPI document has every route (%zu operations)", json_object_size(ops));
    json_decref(ops);
}
