# shellcheck shell=bash
# bench/pg_cpu.sh: sourced by bench scripts. pg_cpu_init reads the postmaster's
# pid of the PostgreSQL at $JETSCHED_TEST_PG_DSN; pg_cpu prints the CPU
# milliseconds of its whole process tree: live processes (backends, WAL
# writer, checkpointer, autovacuum) plus the postmaster's reaped children
# (a backend's CPU moves there once it has exited: wait ~0.5 s after a
# client disconnects before reading).
pg_cpu_init() {
  PG_CPU_PM=$(head -n 1 "$(psql -X -qAt "$JETSCHED_TEST_PG_DSN" -c 'SHOW data_directory')/postmaster.pid")
  PG_CPU_HZ=$(getconf CLK_TCK)
}
pg_cpu() {
  local total p s
  read -r -a s <"/proc/$PG_CPU_PM/stat"
  total=$((s[13] + s[14] + s[15] + s[16]))
  for p in $(pgrep -P "$PG_CPU_PM"); do
    read -r -a s <"/proc/$p/stat" 2>/dev/null || continue
    total=$((total + s[13] + s[14]))
  done
  echo $((total * 1000 / PG_CPU_HZ))
}
