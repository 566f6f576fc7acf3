#!/usr/bin/env python3
# Regenerates an annotated conf/<daemon>.conf from the daemon's schema (--print-schema):
#   python3 scripts/gen-conf.py build/agentd/agentd agentd nats.url,postgres.dsn > conf/agentd.conf
# The third argument lists the keys shown uncommented. tests/unit/daemon_cli.sh checks that
# every schema key is documented in conf/, so run this after adding a key.
import re,sys,subprocess,textwrap
binary, name, active = sys.argv[1], sys.argv[2], set(sys.argv[3].split(','))
lines = subprocess.run([binary,'--print-schema'],capture_output=True,text=True).stdout.splitlines()
out=[f"# {name}.conf: every key of {name}, its default and its meaning.",
"# Syntax: libconfig (https://hyperrealm.github.io/libconfig/). Keys shown commented out",
"# carry their default; uncomment to change them. Validate with:",
f"#   {name} --check-config -c /etc/jetsched/{name}.conf",
"# Environment variables JETSCHED_<SECTION>_<KEY> (e.g. JETSCHED_NATS_URL) override this file;",
"# JETSCHED_PG_DSN overrides postgres.dsn. Keys marked 'reloadable' take effect on SIGHUP.",""]
sections={}
order=[]
i=0
while i < len(lines):
    l=lines[i]
    m=re.match(r'^(\S+) \((.*?)\): (.*)$', l)
    if not m: i+=1; continue
    path,meta,desc=m.groups()
    subs=[]
    j=i+1
    while j<len(lines) and lines[j].startswith('  '):
        subs.append(lines[j].strip()); j+=1
    i=j
    sec,_,leaf = path.rpartition('.')
    if sec not in sections: sections[sec]=[]; order.append(sec)
    sections[sec].append((leaf,meta,desc,subs,path))
def default_of(meta):
    m=re.search(r'default ([^,]+(?:,[^,]*)?)', meta)
    d=re.search(r'default (.*?)(?:, (?:\d|one of|reloadable|secret|required|\S+\.\.)|$)', meta)
    return d.group(1) if d else None
def fmt(meta, d):
    t=meta.split(',')[0]
    if d is None: return '""'
    if t in ('integer',): return d
    if t=='boolean': return d
    if t=='size': return f'"{d}"'
    if t=='list of strings': return '['+', '.join(f'"{x}"' for x in d.split(','))+']'
    return f'"{d}"'
for sec in order:
    ind = '  ' if sec else ''
    if sec: out.append(f"{sec} = {{")
    for leaf,meta,desc,subs,path in sections[sec]:
        for w in textwrap.wrap(f"{desc} ({meta})", 86): out.append(f"{ind}# {w}")
        if meta.startswith('list of groups'):
            for s in subs:
                for w in textwrap.wrap(s, 84): out.append(f"{ind}#   {w}")
            if path == 'queues':
                out.append(f'{ind}{leaf} = (\n{ind}  {{ name = "default"; concurrency = 4; }}\n{ind});')
            else:
                ex = re.search(r': (\( .* \))', desc)
                out.append(f'{ind}# {leaf} = {ex.group(1) if ex else "( )"};')
        else:
            d=default_of(meta)
            line=f"{leaf} = {fmt(meta,d)};"
            out.append(f"{ind}{line}" if path in active and d is not None else f"{ind}# {line}")
        out.append("")
    if sec:
        if out[-1]=="": out.pop()
        out.append("};"); out.append("")
print("\n".join(out))
