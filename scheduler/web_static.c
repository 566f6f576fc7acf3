/* The console's static files (web.h): everything outside /api/ is a file
 * under web.root (default /usr/share/jetsched/web, installed from web/),
 * `/` being index.html. A URL is accepted only when made of
 * [A-Za-z0-9._-] segments none of which starts with a dot (no `..`, no
 * hidden files), so no request can leave web.root; the file is opened
 * relative to the directory opened at start. GET and HEAD only; the
 * Content-Type comes from the extension, an ETag from size and mtime
 * (If-None-Match answers 304), and the browser revalidates every time. */
#include "web.h"

#include <jetsched/log.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int root_fd = -1;
static char root_path[512];

void web_static_init(const char *root)
{
    snprintf(root_path, sizeof root_path, "%s", root ? root : "");
    root_fd = root && *root ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (root_fd < 0)
        jet_warn("web: web.root %s: %s: the console is not served (the REST API is)", root_path,
                 root && *root ? strerror(errno) : "not set");
    else if (faccessat(root_fd, "index.html", R_OK, 0) != 0)
        jet_warn("web: web.root %s has no index.html: the console is not installed there", root_path);
}

void web_static_free(void)
{
    if (root_fd >= 0)
        close(root_fd);
    root_fd = -1;
}

static const char *content_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i][0]))
            return types[i][1];
    return "application/octet-stream";
}

/* The path relative to web.root, or NULL when the URL is not a safe one. */
static bool safe_path(const char *url, char *rel, size_t len)
{
    if (url[0] != '/')
        return false;
    if (!url[1]) {
        snprintf(rel, len, "index.html");
        return true;
    }
    const char *p = url + 1;
    if (strlen(p) >= len)
        return false;
    bool seg_start = true;
    for (const char *q = p; *q; q++) {
        char ch = *q;
        if (ch == '/') {
            if (seg_start) /* "//" or a trailing "/" */
                return false;
            seg_start = true;
            continue;
        }
        if (seg_start && ch == '.')
            return false;
        seg_start = false;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return false;
    }
    if (seg_start)
        return false;
    snprintf(rel, len, "%s", p);
    return true;
}

enum MHD_Result web_static(web_req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        web_header(r, "Allow", "GET, HEAD");
        return web_reply(r, 405, "text/plain; charset=utf-8", strdup("method not allowed\n"), 19);
    }
    char rel[512];
    int fd = -1;
    struct stat st;
    if (root_fd < 0 || !safe_path(r->url, rel, sizeof rel) ||
        (fd = openat(root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return web_reply(r, 404, "text/plain; charset=utf-8", strdup("not found\n"), 10);
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + (unsigned long long)st.st_mtim.tv_nsec);
    web_header(r, "ETag", etag);
    web_header(r, "Cache-Control", "no-cache");
    const char *inm = web_get_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && !strcmp(inm, etag)) {
        close(fd);
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        return web_queue_response(r, 304, resp);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", content_type(rel));
    return web_queue_response(r, 200, resp);
}
