/* web.listen beyond loopback (docs/OPERATIONS.md "Exposing the console"):
 * schedulerd refuses to start on 0.0.0.0 without TLS or web.trust_proxy,
 * and without a token; with a self-signed certificate made here by openssl
 * it serves HTTPS (verified against that certificate, HSTS, a login),
 * refuses plain HTTP on that port and TLS 1.1; with web.trust_proxy the
 * audit log names the X-Forwarded-For client behind the proxy. */
#include "web_support.h"
#include "harness.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Starts schedulerd with conf; expects it to exit non-zero with `why` in its log. */
static void expect_refusal(const char *name, const char *web, const char *why)
{
    char *dir = th_tmpdir();
    char conf[500], log[500], bin[700];
    snprintf(conf, sizeof conf, "%.400s/%s.conf", dir, name);
    snprintf(log, sizeof log, "%.400s/%s.log", dir, name);
    snprintf(bin, sizeof bin, "%s/scheduler/schedulerd", th_require_env("JETSCHED_BUILD_DIR"));
    free(dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "scheduler = { id = \"%s\"; };\nhttp = { listen = \"\"; };\nweb = { %s };\n", name, web);
    fclose(f);
    pid_t pid = th_spawn_daemon(bin, "schedulerd", conf, log);
    int st = 0;
    bool exited = false;
    for (int64_t until = ts_now_ms() + 30000; !exited && ts_now_ms() < until; ts_sleep_ms(50))
        exited = waitpid(pid, &st, WNOHANG) == pid;
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    CHECK(exited && WIFEXITED(st) && WEXITSTATUS(st) != 0, "%s: schedulerd refuses to start", name);
    ts_agent a = {0};
    snprintf(a.log, sizeof a.log, "%s", log);
    CHECK(ts_log_contains(&a, why), "%s: the log says \"%s\"", name, why);
}

int main(void)
{
    ss_env();
    ts_setup("default");
    curl_global_init(CURL_GLOBAL_ALL);
    char *dir = th_tmpdir();
    char cert[600], key[600], cmd[2048];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost 2>/dev/null",
             key, cert);
    CHECK(system(cmd) == 0, "openssl made a self-signed certificate");
    char tokfile[600];
    snprintf(tokfile, sizeof tokfile, "%s/t.token", dir);
    FILE *f = fopen(tokfile, "w");
    fputs("a-token-of-enough-length-1234\n", f);
    fclose(f);

    int port = th_free_port();
    char web[2048];
    snprintf(web, sizeof web, "listen = \"0.0.0.0:%d\"; tokens = ( { name = \"t\"; file = \"%s\"; } );", port,
             tokfile);
    expect_refusal("no-tls", web, "is beyond loopback: set web.tls_cert and web.tls_key, or web.trust_proxy");
    snprintf(web, sizeof web, "listen = \"0.0.0.0:%d\"; tls_cert = \"%s\"; tls_key = \"%s\";", port, cert, key);
    expect_refusal("no-token", web, "configure at least one token in web.tokens");
    snprintf(web, sizeof web, "listen = \"127.0.0.1:%d\"; tls_cert = \"%s\";", port, cert);
    expect_refusal("half-tls", web, "web.tls_cert and web.tls_key: set both or neither");
    snprintf(web, sizeof web, "listen = \"127.0.0.1:%d\"; tokens = ( { name = \"t\"; file = \"%s/none\"; } );", port,
             dir);
    expect_refusal("no-token-file", web, "web.tokens[0].file (token t)");

    /* HTTPS on every address, with the certificate made above. */
    wt_server w;
    char extra[1400];
    snprintf(extra, sizeof extra, "tls_cert = \"%s\"; tls_key = \"%s\";", cert, key);
    wt_listen_host("0.0.0.0");
    wt_start(&w, "web-tls", NULL, extra, NULL);
    snprintf(w.cafile, sizeof w.cafile, "%s", cert);
    CHECK(!strcmp(w.scheme, "https"), "the test speaks https");
    wt_resp *r = wt_req(&w, "GET", "/api/v1/session", NULL, "operator", NULL);
    char h[256];
    CHECK(r->status == 200 && !strcmp(sa_str(r->json, "role"), "operator"), "HTTPS request verified against the "
          "self-signed certificate: %ld %s", r->status, r->body);
    CHECK(wt_header(r, "Strict-Transport-Security", h, sizeof h) != NULL, "HSTS over HTTPS");
    wt_free(r);
    char body[200];
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", w.viewer);
    r = wt_req(&w, "POST", "/api/v1/login", body, NULL, NULL);
    CHECK(r->status == 200 && wt_header(r, "Set-Cookie", h, sizeof h) && strstr(h, "Secure"), "login over HTTPS");
    wt_free(r);
    wt_expect(wt_req(&w, "GET", "/api/v1/queues", NULL, NULL, NULL), 401, "unauthenticated", NULL,
              "HTTPS without a token");
    /* Plain HTTP to the TLS port gets no HTTP answer. */
    snprintf(w.scheme, sizeof w.scheme, "http");
    r = wt_req(&w, "GET", "/api/v1/session", NULL, "operator", NULL);
    CHECK(r->status <= 0 || r->status >= 400, "plain HTTP on the TLS port is not served (%ld)", r->status);
    wt_free(r);
    snprintf(w.scheme, sizeof w.scheme, "https");
    /* TLS 1.1 is refused (TLS 1.2 and 1.3 only). */
    CURL *c = curl_easy_init();
    char url[200];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/api/v1/openapi.json", w.port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, cert);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_1));
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    CURLcode rc = curl_easy_perform(c);
    CHECK(rc != CURLE_OK, "a TLS 1.1 client is refused (%s)", curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    fclose(devnull);
    CHECK(ts_agent_stop(&w.s, SIGTERM, 15000) == 0, "schedulerd (TLS) exits 0");

    /* Behind a trusted proxy: plain HTTP beyond loopback, the client from X-Forwarded-For. */
    wt_server p;
    wt_start(&p, "web-proxy", NULL, "trust_proxy = true;", NULL);
    const char *xff[] = {"X-Forwarded-For: 198.51.100.9, 203.0.113.7", NULL};
    wt_expect(wt_req(&p, "POST", "/api/v1/tasks", "{\"handler\":\"echo\",\"delay\":\"1h\"}", "operator", xff), 201, NULL,
              NULL, "submit through the proxy");
    CHECK(ts_log_contains(&p.s, "(task.submit) by ops [operator, bearer] from 203.0.113.7 via 127.0.0.1: 201"),
          "the audit line names the forwarded client and the proxy");
    CHECK(ts_agent_stop(&p.s, SIGTERM, 15000) == 0, "schedulerd (proxy) exits 0");
    free(dir);
    curl_global_cleanup();
    return ts_finish();
}
