"""Instructions per request from two callgrind dumps (see scripts/profile-serve.sh):
the exclusive cost of each function in the second dump minus the first, divided
by the requests between them; grouped by crate, then the top functions."""
import sys, collections, re
def parse(path):
    ex = collections.Counter()
    fn = None; skip_next = False
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        if line.startswith('fn='):
            fn = line[3:]; continue
        if line.startswith('calls='):
            skip_next = True; continue
        if line and (line[0].isdigit() or line[0] in '+-*'):
            parts = line.split()
            if len(parts) >= 2:
                c = int(parts[1])
                if skip_next:
                    skip_next = False
                else:
                    ex[fn] += c
            continue
    return ex
a = parse(sys.argv[1]); b = parse(sys.argv[2]); n = int(sys.argv[3])
d = collections.Counter()
for k in set(a) | set(b):
    d[k] = b[k] - a[k]
tot = sum(d.values())
print(f"total per request: {tot/n:,.0f}")
groups = collections.Counter()
def group(name):
    for key, g in [('tokio_postgres','tokio-postgres'),('postgres_protocol','tokio-postgres'),('hyper','hyper'),('http::','hyper'),('h1::','hyper'),('axum','axum'),('tower','tower'),('serde_json','serde_json'),('serde','serde'),('tracing','tracing'),('prometheus','metrics'),('mi_','mimalloc'),('_mi','mimalloc'),('tokio::','tokio'),('deadpool','deadpool'),('dash_api','dash-api'),('dash_store','dash-store'),('uuid','uuid'),('chrono','chrono'),('core::fmt','fmt'),('alloc::fmt','fmt'),('memcpy','libc mem'),('memmove','libc mem'),('memset','libc mem'),('syscall','libc syscalls'),('epoll','libc syscalls'),('__libc','libc'),('__GI','libc'),('hashbrown','hashbrown'),('core::hash','hash'),('std::sys','std'),('sha2','sha2'),('matchit','matchit')]:
        if key in name: return g
    return 'other'
for k,v in d.items():
    groups[group(k)] += v
for g,v in groups.most_common(30):
    print(f"{g:20s} {v/n:10,.0f}  {100*v/tot:5.1f}%")
print()
for k,v in d.most_common(int(sys.argv[4]) if len(sys.argv)>4 else 40):
    print(f"{v/n:10,.0f}  {k[:150]}")
