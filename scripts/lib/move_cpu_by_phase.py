"""CPU seconds by process role and by the move's phase, from move_cpu_sampler.py's JSON
lines (argv[1]). A backend's role is read from every query pg_stat_activity showed for
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
wall = collections.defaultdict(float)
for a, b in zip(samples, samples[1:]):
    phase = b['phase'] or '(no move)'
    wall[phase] += b['t'] - a['t']
    for pid, (comm, ticks, cmd) in b['procs'].items():
        before = a['procs'].get(pid)
        # A process new since the last sample counts all its ticks here (a backend's
        # title, in cmd, changes with what it runs: not a new process).
        d = ticks - before[1] if before else ticks
        cpu[phase][role(pid, comm, cmd)] += max(d, 0) / HZ
for phase, roles in cpu.items():
    print(f'phase {phase}: {wall[phase]:.0f} s')
    print('| process | CPU s | share of one core |')
    print('| --- | ---: | ---: |')
    for name, v in sorted(roles.items(), key=lambda kv: -kv[1]):
        if v >= 0.05:
            print(f'| {name} | {v:.1f} | {100 * v / wall[phase]:.1f}% |')
    total = sum(roles.values())
    print(f'| all | {total:.1f} | {100 * total / wall[phase]:.1f}% |')
    print()
