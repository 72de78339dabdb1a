#!/usr/bin/env python3
"""Runs `yiti bench` and the peer engines' llama-bench on the same GGUF files with the same threads,
and prints (and writes to a Markdown file) the speeds and ratios.

Peers are given by path and skipped when not given:
  LLAMA_BENCH=/path/to/llama.cpp/build/bin/llama-bench
  IK_LLAMA_BENCH=/path/to/ik_llama.cpp/build/bin/llama-bench
Extra llama-bench arguments for a peer come from LLAMA_BENCH_ARGS / IK_LLAMA_BENCH_ARGS (split on
spaces); several configurations separated by ';' (e.g. IK_LLAMA_BENCH_ARGS=";-rtr 1" for the defaults
and run-time repacking) are all run, and the peer's figure for each test is its best configuration's.

The engines run one after the other, in an order that rotates every round, for --rounds rounds;
every figure is the median over all repetitions of all rounds, so a burst of load on a shared
machine hits every engine alike. The machine's load average is recorded with the results.

Usage:
  bench/compare.py [-m MODEL ...] [-t 2] [-p 512] [-n 128] [-r 3] [--rounds 2] [--yiti PATH]
                   [--out bench/RESULTS.md] [--nice N]
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ["models/tinyllama-Q4_K_M.gguf", "models/tinyllama-Q8_0.gguf",
                  "models/dsmoe-Q4_K_M.gguf", "models/dsmoe-Q8_0.gguf"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return float("nan")


def run(cmd, nice):
    if nice:
        cmd = ["nice", "-n", str(nice)] + cmd
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log(p.stderr[-3000:])
        raise RuntimeError(f"{cmd[0]} failed with exit code {p.returncode}")
    log(f"  ({time.time() - t0:.0f} s)")
    return p.stdout


def bench_yiti(binary, model, a):
    out = run([binary, "bench", "-m", model, "-t", str(a.threads), "-p", str(a.n_prompt), "-n", str(a.n_gen),
               "-r", str(a.reps), "--json"], a.nice)
    res = {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        o = json.loads(line)
        res[o["test"]] = {"samples": o["samples_tokens_per_s"], "bytes_per_token": o["bytes_per_token"],
                          "membw": o["membw_gb_per_s"], "model_bytes": o["model_bytes"]}
    return res


def bench_llama(binary, extra, model, a):
    out = run([binary, "-m", model, "-t", str(a.threads), "-p", str(a.n_prompt), "-n", str(a.n_gen),
               "-r", str(a.reps), "-o", "json"] + extra, a.nice)
    res = {}
    # The JSON array, without the log lines some builds print to stdout among it (ik_llama.cpp's
    # "impl: using THP with page size 2 MiB . done").
    doc = "\n".join(l for l in out.splitlines() if l.strip()[:1] in ("[", "]", "{", "}", '"'))
    for o in json.loads(doc[doc.index("["):]):
        if o.get("n_prompt", 0) > 0 and o.get("n_gen", 0) == 0:
            test = f"pp{o['n_prompt']}"
        elif o.get("n_gen", 0) > 0 and o.get("n_prompt", 0) == 0:
            test = f"tg{o['n_gen']}"
        else:
            continue
        res[test] = {"samples": o.get("samples_ts") or [o["avg_ts"]]}
    return res


def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", help="GGUF file (repeatable; default: the four benchmark files)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--yiti", default=None, help="the yiti binary (default: build-speed/yiti or build/yiti)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--nice", type=int, default=0, help="run every engine under this nice value (same for all)")
    a = ap.parse_args()

    models = a.model or [os.path.join(ROOT, m) for m in DEFAULT_MODELS]
    yiti = a.yiti
    if not yiti:
        for c in ("build-speed/yiti", "build/yiti"):
            if os.path.exists(os.path.join(ROOT, c)):
                yiti = os.path.join(ROOT, c)
                break
    if not yiti:
        sys.exit("no yiti binary: build it or pass --yiti")
    engines = [("yiti", lambda m: bench_yiti(yiti, m, a))]
    for name, env in (("llama.cpp", "LLAMA_BENCH"), ("ik_llama.cpp", "IK_LLAMA_BENCH")):
        path = os.environ.get(env)
        if not path:
            log(f"{env} not set: skipping {name}")
            continue
        configs = [shlex.split(c) for c in os.environ.get(env + "_ARGS", "").split(";")]

        def run_peer(m, p=path, cfgs=configs):
            best = {}
            for c in cfgs:
                for test, r in bench_llama(p, c, m, a).items():
                    r["config"] = " ".join(c) or "defaults"
                    if test not in best or statistics.median(r["samples"]) > statistics.median(best[test]["samples"]):
                        best[test] = r
            return best
        engines.append((name, run_peer))

    samples = {}  # (model, engine, test) -> [t/s]
    configs_used = {}  # (model, peer, test) -> the peer configurations that were best
    info = {}     # model -> yiti's bytes per token, membw
    loads = [loadavg()]
    started = datetime.datetime.now()
    for rnd in range(a.rounds):
        for mi, model in enumerate(models):
            k = (rnd + mi) % len(engines)
            for name, fn in engines[k:] + engines[:k]:
                res = fn(model)
                loads.append(loadavg())
                for test, r in res.items():
                    samples.setdefault((model, name, test), []).extend(r["samples"])
                    if "config" in r:
                        configs_used.setdefault((model, name, test), set()).add(r["config"])
                    if name == "yiti":
                        info.setdefault(model, {}).setdefault(test, []).append(r)
    tests = [f"pp{a.n_prompt}"] if a.n_prompt > 0 else []
    if a.n_gen > 0:
        tests.append(f"tg{a.n_gen}")
    names = [e[0] for e in engines]

    def med(model, name, test):
        v = samples.get((model, name, test))
        return statistics.median(v) if v else None

    membws = [r["membw"] for m in info.values() for t in m.values() for r in t if r["membw"] > 0]
    membw = statistics.median(membws) if membws else None
    lines = []
    head = ["model", "test", "yiti t/s"]
    if "llama.cpp" in names:
        head += ["llama.cpp t/s", "yiti / llama.cpp"]
    if "ik_llama.cpp" in names:
        head += ["ik_llama.cpp t/s", "yiti / ik_llama.cpp"]
    head += ["yiti GB/s", "% of read bw"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    summary = []
    for model in models:
        for test in tests:
            ours = med(model, "yiti", test)
            row = [os.path.basename(model), test, fmt(ours)]
            for peer in ("llama.cpp", "ik_llama.cpp"):
                if peer in names:
                    theirs = med(model, peer, test)
                    ratio = ours / theirs if ours and theirs else None
                    row += [fmt(theirs), fmt(ratio) + "×" if ratio else "–"]
                    summary.append((os.path.basename(model), test, peer, ratio))
            bpt = info.get(model, {}).get(test, [{}])[0].get("bytes_per_token")
            gbs = ours * bpt / 1e9 if ours and bpt else None
            row += [fmt(gbs), fmt(100 * gbs / membw, 0) + "%" if gbs and membw and test.startswith("tg") else "–"]
            lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    notes = [
        f"Measured {started:%Y-%m-%d %H:%M} on {cpu or 'this machine'}, {a.threads} threads, "
        f"pp{a.n_prompt} / tg{a.n_gen}, {a.reps} repetitions x {a.rounds} rounds per engine and file "
        f"(engines interleaved, order rotating), medians.",
        f"Machine read bandwidth (yiti bench's multi-threaded streaming read over a 2 GiB buffer, median of runs): "
        f"{fmt(membw, 1)} GB/s." if membw else "",
        f"Load average during the run: {min(loads):.1f} .. {max(loads):.1f} (the machine is shared; "
        f"{'nice ' + str(a.nice) + ' for every engine' if a.nice else 'default priority'}).",
        "GB/s: weight bytes read per token (tg: every layer's weights and the routed experts a token uses; "
        "pp: every weight once per pass) x tokens/s.",
    ]
    for name, env in (("llama.cpp", "LLAMA_BENCH"), ("ik_llama.cpp", "IK_LLAMA_BENCH")):
        if name in names:
            cfgs = [c.strip() for c in os.environ.get(env + "_ARGS", "").split(";")]
            alts = " or ".join(f"`{c}`" if c else "defaults" for c in cfgs)
            notes.append(f"{name}: `llama-bench -t {a.threads} -p {a.n_prompt} -n {a.n_gen} -r {a.reps}` with {alts}"
                         + (" (the best per test counts)" if len(cfgs) > 1 else "") + ".")
            used = sorted(f"{os.path.basename(m)} {t}: {', '.join(sorted(c))}" for (m, n, t), c in configs_used.items()
                          if n == name and len(cfgs) > 1)
            if used:
                notes.append(f"{name} best configuration per test: " + "; ".join(used) + ".")
    notes.append(f"yiti: `yiti bench -t {a.threads} -p {a.n_prompt} -n {a.n_gen} -r {a.reps}`.")
    text = table + "\n\n" + "\n".join(f"- {n}" for n in notes if n) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write("# yiti vs llama.cpp vs ik_llama.cpp (CPU)\n\nProduced by `bench/compare.py`.\n\n" + text)
        log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
