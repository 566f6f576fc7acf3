/* tests/harness/procstat.h — the fields of /proc/<pid>/stat that tests look at
 * (state, parent, process group), parsed in one place for C tests. */
#ifndef JETSCHED_TESTS_PROCSTAT_H
#define JETSCHED_TESTS_PROCSTAT_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int pid;
    char comm[64];                /* between the outer parentheses; may hold blanks and ')' */
    char state;                   /* 'R', 'S', 'Z', ... */
    int ppid;
    int pgrp;
    int session;
    unsigned long long starttime; /* field 22: clock ticks after boot (with pid, names one process) */
} th_procstat;

/* Reads /proc/<pid>/stat into *out. Returns 0, or -1 when the process is
 * gone or the line does not parse. */
int th_procstat_read(int pid, th_procstat *out);

/* Calls fn for every process of /proc (processes that vanish meanwhile are
 * skipped). Stops at the first non-zero return of fn and returns it; returns
 * 0 after all, -1 when /proc cannot be read. */
int th_procstat_each(int (*fn)(const th_procstat *p, void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* JETSCHED_TESTS_PROCSTAT_H */
