/* tests/harness/procstat.c — /proc/<pid>/stat parsing for C tests (see procstat.h). */
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int th_procstat_read(int pid, th_procstat *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) S ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime cutime cstime priority nice threads itrealvalue
     * starttime ...": comm may contain anything, so split at the first '('
     * and the last ')'. */
    char *lp = strchr(buf, '(');
    char *rp = strrchr(buf, ')');
    if (!lp || !rp || rp < lp)
        return -1;
    memset(out, 0, sizeof *out);
    out->pid = pid;
    size_t clen = (size_t)(rp - lp - 1);
    if (clen >= sizeof out->comm)
        clen = sizeof out->comm - 1;
    memcpy(out->comm, lp + 1, clen);
    out->comm[clen] = '\0';
    /* after ')': state ppid pgrp session, fields 7..21 skipped, starttime */
    static const char fmt[] = " %c %d %d %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu";
    if (sscanf(rp + 1, fmt, &out->state, &out->ppid, &out->pgrp, &out->session, &out->starttime) != 5)
        return -1;
    return 0;
}

int th_procstat_each(int (*fn)(const th_procstat *p, void *arg), void *arg)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        th_procstat p;
        if (th_procstat_read(atoi(de->d_name), &p) == 0)
            rc = fn(&p, arg);
    }
    closedir(d);
    return rc;
}
