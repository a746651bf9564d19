"""Samples, every 2 s until a file named by argv[2] exists, the CPU ticks of every
PostgreSQL and orgwall process (/proc/PID/stat) and the time its threads waited for a CPU
(/proc/PID/task/TID/schedstat), the machine's CPU and IO pressure (/proc/pressure), what
each throwaway cluster's pg_stat_activity says of its backends, and the move's phase
(placement_moves), as JSON lines into argv[1]. Used by scripts/profile-moves; read by move_cpu_by_phase.py."""
import os, re, subprocess, time, json, sys
out = open(sys.argv[1], 'w')
def procs():
    res = {}
    for p in os.listdir('/proc'):
        if not p.isdigit(): continue
        try:
            st = open(f'/proc/{p}/stat').read()
            cmd = open(f'/proc/{p}/cmdline','rb').read().replace(b'\0',b' ').decode(errors='replace')
        except Exception: continue
        comm = st[st.index('(')+1:st.rindex(')')]
        f = st[st.rindex(')')+2:].split()
        ticks = int(f[11]) + int(f[12])
        # Time its threads waited, runnable, for a CPU (ns, /proc/PID/task/TID/schedstat).
        wait = 0
        try:
            for t in os.listdir(f'/proc/{p}/task'):
                wait += int(open(f'/proc/{p}/task/{t}/schedstat').read().split()[1])
        except Exception: pass
        res[int(p)] = (comm, ticks, cmd[:120], wait)
    return res
def pressure(kind):
    """Microseconds some task waited for `kind` (cpu, io) since boot (/proc/pressure)."""
    try:
        return int(open(f'/proc/pressure/{kind}').read().split('\n')[0].split('total=')[1])
    except Exception:
        return 0
def psql(port, db, sql):
    r = subprocess.run(['psql','-h','127.0.0.1','-p',str(port),'-U','postgres','-d',db,'-AtF','\t','-c',sql],capture_output=True,text=True,timeout=5)
    return [l.split('\t') for l in r.stdout.splitlines() if l]
ctl = None
while not os.path.exists(sys.argv[2]):
    t = time.time()
    ps = procs()
    ports = set()
    for comm, ticks, cmd, _ in ps.values():
        m = re.search(r'postgres -D \S+ .*-p (\d+)', cmd)
        if m and int(m.group(1)) != 5432: ports.add(int(m.group(1)))
    act = {}
    phase = None
    for port in sorted(ports):
        try:
            for row in psql(port, 'postgres', "select pid, coalesce(datname,''), backend_type, coalesce(state,''), left(regexp_replace(query,'\\s+',' ','g'),80) from pg_stat_activity"):
                act[row[0]] = [port] + row[1:]
            if ctl is None:
                for (db,) in psql(port, 'postgres', "select datname from pg_database where not datistemplate"):
                    if psql(port, db, "select to_regclass('placement_moves') is not null") == [['t']]:
                        ctl = (port, db)
            if ctl and ctl[0] == port:
                r = psql(port, ctl[1], "select phase from placement_moves")
                phase = r[0][0] if r else None
        except Exception:
            pass
    out.write(json.dumps({'t': t, 'phase': phase, 'ports': sorted(ports), 'procs': {str(k): list(v) for k, v in ps.items() if v[0] in ('postgres','orgwall-bench') or 'orgwall' in v[0]}, 'act': act, 'psi': {'cpu': pressure('cpu'), 'io': pressure('io')}}) + '\n')
    out.flush()
    time.sleep(max(0.1, 2 - (time.time() - t)))
