"""CPU seconds and seconds waited for a CPU by process role and by the move's phase, with
the machine's CPU and IO pressure, from move_cpu_sampler.py's JSON lines (argv[1]). A backend's role is read from every query pg_stat_activity showed for
it: the mover's slot reads, its destination connection (the copy's writes and the
replay), its source snapshot (the copy's reads), background processes by type, and the
rest (the writers' transactions, on lanes and pooled connections, and the mover's
statements on other connections: its content check, the cleanup's deletes)."""
import collections
import json
import os
import sys

HZ = os.sysconf('SC_CLK_TCK')
samples = [json.loads(line) for line in open(sys.argv[1])]
seen = collections.defaultdict(set)
for s in samples:
    for pid, (port, db, btype, state, query) in s['act'].items():
        seen[pid].add((port, btype, query))


def role(pid, comm, cmd):
    if comm == 'orgwall-bench':
        return 'bench process (writers + in-process mover)'
    if comm != 'postgres':
        return 'other: ' + comm
    if '15/main' in cmd:
        return 'the shared server (not the bench)'
    info = seen.get(pid)
    if not info:
        return 'postmaster' if 'postgres -D' in cmd else 'pg, unnamed (short-lived)'
    queries = ' | '.join(q for _, _, q in info)
    types = {b for _, b, _ in info}
    if 'client backend' not in types:
        return 'pg background: ' + sorted(types)[0]
    if any(k in queries for k in ('pg_stat_activity', 'to_regclass', 'pg_database', 'select phase')):
        return 'this sampler'
    if 'slot_peek' in queries or 'slot_advance' in queries:
        return 'mover: slot reads (logical decoding)'
    if 'orgwall_move_stage' in queries:
        return 'mover: destination (copy writes, replay)'
    if 'COPY (SELECT' in queries:
        return 'mover: source snapshot (copy reads)'
    return "other client backends (writers; the mover's check, cleanup)"


cpu = collections.defaultdict(lambda: collections.defaultdict(float))
waited = collections.defaultdict(lambda: collections.defaultdict(float))
psi = collections.defaultdict(lambda: collections.defaultdict(float))
wall = collections.defaultdict(float)
for a, b in zip(samples, samples[1:]):
    phase = b['phase'] or '(no move)'
    wall[phase] += b['t'] - a['t']
    for kind in ('cpu', 'io'):
        psi[phase][kind] += (b.get('psi', {}).get(kind, 0) - a.get('psi', {}).get(kind, 0)) / 1e6
    for pid, (comm, ticks, cmd, wait) in b['procs'].items():
        before = a['procs'].get(pid)
        # A process new since the last sample counts all its ticks here (a backend's
        # title, in cmd, changes with what it runs: not a new process).
        d = ticks - before[1] if before else ticks
        w = wait - before[3] if before else wait
        who = role(pid, comm, cmd)
        cpu[phase][who] += max(d, 0) / HZ
        waited[phase][who] += max(w, 0) / 1e9
for phase, roles in cpu.items():
    t = wall[phase]
    print(f'phase {phase}: {t:.0f} s; some task waiting for a CPU {100 * psi[phase]["cpu"] / t:.1f}% '
          f'of the time, for IO {100 * psi[phase]["io"] / t:.1f}% (/proc/pressure)')
    print('| process | CPU s | share of one core | waited for a CPU, ms per s |')
    print('| --- | ---: | ---: | ---: |')
    for name, v in sorted(roles.items(), key=lambda kv: -kv[1]):
        if v >= 0.05:
            print(f'| {name} | {v:.1f} | {100 * v / t:.1f}% | {1000 * waited[phase][name] / t:.1f} |')
    total = sum(roles.values())
    print(f'| all | {total:.1f} | {100 * total / t:.1f}% | {1000 * sum(waited[phase].values()) / t:.1f} |')
    print()
