/* What shim.c (one attempt's shim) and launcher.c (the long-lived launcher that forks shims) share. */
#ifndef FREIGHT_SHIM_H
#define FREIGHT_SHIM_H

/* the shim could not do its work (no status recorded) */
#define SHIM_FAILED 125
/* a launched shim gave up before it told the runtime it runs: its job never started */
#define SHIM_ABORTED 124

struct job {
    const char *cwd; /* or "-" */
    char *rlimits;   /* "-" or "as=BYTES,nproc=N" */
    int nprocs;
    char **procs; /* cgroup.procs files the job joins */
    int nstats;
    char **stats;   /* "name:field:path" counters read when the job ends */
    char **command; /* NULL-terminated */
};

/* the attempt's record directory: the shim writes its files there */
extern const char *record_dir;

void enter_own_session(void);
int supervise(const struct job *job);
int serve(void);

#endif
