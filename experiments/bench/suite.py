#!/usr/bin/python3
"""suite.py -- issue #8's benchmark suite: qtune against a PyTorch peer.

Two phases (experiments/bench/run.sh calls both):

  suite.py measure --setting NAME --out PART.json [options]
      one environment setting (run.sh sets OPENBLAS_CORETYPE and the OpenMP
      variables before starting it, so qtune and the peer run under the same
      one): starts build-*/experiments/qtbench (qtune's side, a command
      server) and runs the PyTorch peer in this process, alternating them
      (A B A B) case by case.
  suite.py report --json OUT.json --md OUT.md --command CMD PART.json...
      merges the settings, checks the targets, writes JSON and Markdown.

Needs /usr/bin/python3 (Debian's python3-torch 1.13) and numpy.
See experiments/README.md, section "bench/ (the suite against PyTorch)".
"""
import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

BATCH = 256
TRAIN_BATCH = 64


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class SuiteError(Exception):
    pass


# ---------------------------------------------------------------------------
# qtune's side: the qtbench command server
# ---------------------------------------------------------------------------

class QtBench:
    def __init__(self, exe):
        self.p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, cwd=REPO)

    def __call__(self, *words):
        line = " ".join(str(w) for w in words)
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline()
        if not out:
            raise SuiteError("qtbench died on: %s" % line)
        return json.loads(out)

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
        except OSError:
            pass
        self.p.wait()


# ---------------------------------------------------------------------------
# The peer: qtune's exported graph rebuilt in torch
# ---------------------------------------------------------------------------

def import_torch(threads):
    import torch
    torch.set_num_threads(threads)
    return torch


def qparams(F, W=8):
    s = 2.0 ** F
    return (s, 1.0 / s, float(-(1 << (W - 1))), float((1 << (W - 1)) - 1))


def make_fq(torch, kind):
    """fake quantization to fixed<W,F> (scale, round, clamp, rescale)"""
    if kind == "ops":          # nearest-even (torch.round), four in-place ops
        def fq(x, s, inv, lo, hi):
            y = x * s
            y.round_()
            y.clamp_(lo, hi)
            return y.mul_(inv)
    elif kind == "fused":      # torch's fused fake-quant kernel (also nearest-even)
        def fq(x, s, inv, lo, hi):
            return torch.fake_quantize_per_tensor_affine(x, inv, 0, int(lo), int(hi))
    elif kind == "sr":         # stochastic: floor(x s + u), u ~ U[0,1)
        def fq(x, s, inv, lo, hi):
            y = x * s
            y.add_(torch.rand_like(y))
            y.floor_()
            y.clamp_(lo, hi)
            return y.mul_(inv)
    else:
        raise ValueError(kind)
    return fq


def build_peer(torch, G, blob, quant=None, qgrad=False, seed=0):
    """An nn.Module computing qtune's graph G with parameters from blob.

    quant: None (fp32) or "ops" / "fused" / "sr": weights and bias quantized
    once (fixed<8,F>, F from qtune's fit), every node's output quantized in
    forward. qgrad: the gradient arriving at every node's output and the
    parameter gradients quantized to fixed<16,F> stochastically (see
    quantize_param_grads)."""
    nn, Fn = torch.nn, torch.nn.functional
    fq = make_fq(torch, quant) if quant else None
    gen = torch.Generator().manual_seed(seed)

    def q_once(t, F):
        s, inv, lo, hi = qparams(F)
        if quant == "sr":
            u = torch.rand(t.shape, generator=gen)
            return torch.clamp(torch.floor(t * s + u), lo, hi) * inv
        return torch.clamp(torch.round(t * s), lo, hi) * inv

    class GradQ(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, s, inv, lo, hi):
            ctx.q = (s, inv, lo, hi)
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            s, inv, lo, hi = ctx.q
            y = g * s
            y.add_(torch.rand_like(y))
            y.floor_()
            y.clamp_(lo, hi)
            return y.mul_(inv), None, None, None, None

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.nodes = G["nodes"]
            self.out_id = G["output"]
            self.P = nn.ParameterDict()
            self.gradq = []
            for nd in self.nodes:
                i = nd["id"]
                for p in nd["params"]:
                    size = int(np.prod(p["shape"]))
                    t = torch.from_numpy(blob[p["offset"]:p["offset"] + size].copy()).reshape(p["shape"])
                    if p["which"] in (0, 1):
                        if quant:
                            t = q_once(t, nd["F8"]["w" if p["which"] == 0 else "b"])
                        self.P["p%d_%d" % (i, p["which"])] = nn.Parameter(t)
                    else:
                        self.register_buffer("b%d_%d" % (i, p["which"]), t)
            self.oq = [qparams(nd["F8"]["act"]) for nd in self.nodes]
            self.gq = [qparams(nd["F16"]["gout"], 16) for nd in self.nodes]
            self.gw = []
            for nd in self.nodes:
                for w in (0, 1):
                    k = "p%d_%d" % (nd["id"], w)
                    if k in self.P:
                        self.gw.append((k, qparams(nd["F16"]["gw"], 16)))

        def par(self, i, w):
            k = "p%d_%d" % (i, w)
            return self.P[k] if k in self.P else None

        def forward(self, x):
            v = [None] * len(self.nodes)
            for nd in self.nodes:
                i, op, a = nd["id"], nd["op"], nd["attr"]
                ins = [v[j] for j in nd["inputs"]]
                if op == "input":
                    y = x
                elif op == "conv":
                    st = [s or 1 for s in a["stride"][:2]]
                    dl = [d or 1 for d in a["dilation"][:2]]
                    pd = a["pad"]
                    if pd[0] != pd[2] or pd[1] != pd[3]:
                        raise SuiteError("asymmetric padding not supported by the peer")
                    y = Fn.conv2d(ins[0], self.par(i, 0), self.par(i, 1), st, pd[:2], dl,
                                  a["groups"] or 1)
                elif op == "dense":
                    xi = ins[0]
                    if xi.dim() > 2:
                        xi = xi.flatten(1)
                    y = Fn.linear(xi, self.par(i, 0), self.par(i, 1))
                elif op == "maxpool":
                    st = [s or 1 for s in a["stride"][:2]]
                    dl = [d or 1 for d in a["dilation"][:2]]
                    y = Fn.max_pool2d(ins[0], a["kernel"][:2], st, a["pad"][:2], dl,
                                      ceil_mode=bool(a["ceil_mode"]))
                elif op == "relu":
                    y = Fn.relu(ins[0])
                elif op == "batchnorm":
                    y = Fn.batch_norm(ins[0], getattr(self, "b%d_2" % i), getattr(self, "b%d_3" % i),
                                      self.par(i, 0), self.par(i, 1), self.training,
                                      a["momentum"], a["eps"])
                elif op == "add":
                    y = ins[0] + ins[1]
                elif op == "flatten":
                    y = ins[0].flatten(1)
                elif op == "gap":
                    y = ins[0].flatten(2).mean(2)
                    if a["mode"] == 1:
                        y = y[:, :, None, None]
                elif op == "dropout":
                    y = ins[0]
                else:
                    raise SuiteError("op %s not supported by the peer" % op)
                if fq is not None:
                    y = fq(y, *self.oq[i])
                if qgrad and i > 0:
                    y = GradQ.apply(y, *self.gq[i])
                v[i] = y
            return v[self.out_id]

        def quantize_param_grads(self):
            for k, (s, inv, lo, hi) in self.gw:
                g = self.P[k].grad
                if g is not None:
                    g.mul_(s)
                    g.add_(torch.rand_like(g))
                    g.floor_()
                    g.clamp_(lo, hi)
                    g.mul_(inv)

    return Net()


def freeze(torch, model, example):
    model.eval()
    with torch.no_grad():
        tr = torch.jit.trace(model, example, check_trace=False)
        return torch.jit.freeze(tr)


def run_inference(torch, fn, X, Y, limit):
    """(seconds, top1, logits) of fn over the first limit images, batch 256"""
    correct = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s0 in range(0, limit, BATCH):
            out = fn(X[s0:min(limit, s0 + BATCH)])
            correct += int((out.argmax(1) == Y[s0:min(limit, s0 + BATCH)]).sum())
    return time.perf_counter() - t0, correct / limit


def logits_of(torch, fn, X, limit):
    outs = []
    with torch.inference_mode():
        for s0 in range(0, limit, BATCH):
            outs.append(fn(X[s0:min(limit, s0 + BATCH)]))
    return torch.cat(outs).numpy()


# intrinsic bit-true fixed point, written in torch: operands rounded to
# fixed<W,F> (nearest-even, saturating), then for every output element
# acc = 0; acc = sat(acc + sat(round(w_k x_k))) over k ascending (input
# channel, kernel row, kernel column: unfold's order); acc = sat(acc + b).
# Integers in units of 2^-F; products are exact in float32 for W = 8 and in
# float64 for W = 16.

def emulate_layer(torch, nd, wt, bs, xin, F, W, variant="loop"):
    """variant "loop": per tap k, one product op and four in-place ops;
    "batched": every product of a chunk of images at once (one op, then the
    rounding in place), then the sequential saturating sum over k (two ops
    per tap on contiguous slices)"""
    Fn = torch.nn.functional
    dtype = torch.float32 if 2 * W <= 24 else torch.float64
    s, inv, lo, hi = qparams(F, W)

    def q(t):
        return torch.clamp(torch.round(t.to(dtype) * s), lo, hi)

    a = nd["attr"]
    N = xin.shape[0]
    xq, wq = q(xin), q(wt)
    bq = q(bs) if bs is not None else None
    O = wq.shape[0]
    wq = wq.reshape(O, -1)
    K = wq.shape[1]
    if nd["op"] == "conv":
        st = [v or 1 for v in a["stride"][:2]]
        dl = [v or 1 for v in a["dilation"][:2]]
        cols = Fn.unfold(xq, a["kernel"][:2], dl, a["pad"][:2], st)       # N, K, L
        L = cols.shape[2]
        colsT = cols.permute(1, 0, 2).contiguous()                        # K, N, L
        wk = wq.t().contiguous().reshape(K, 1, O, 1)
        xs, bshape = colsT.unsqueeze(2), (1, O, 1)                        # K, N, 1, L
        acc_shape = (N, O, L)
    else:
        L = 1
        xs = xq.reshape(N, K).t().contiguous().reshape(K, N, 1)           # K, N, 1
        wk = wq.t().contiguous().reshape(K, 1, O)                         # K, 1, O
        bshape, acc_shape = (1, O), (N, O)
    acc = torch.zeros(acc_shape, dtype=dtype)
    if variant == "loop":
        tmp = torch.empty_like(acc)
        for k in range(K):
            torch.mul(xs[k], wk[k], out=tmp)
            tmp.mul_(inv).round_().clamp_(lo, hi)
            acc.add_(tmp).clamp_(lo, hi)
    else:
        per_img = K * O * L * (4 if dtype == torch.float32 else 8)
        chunk = max(1, min(N, (64 << 20) // per_img))
        for n0 in range(0, N, chunk):
            n1 = min(N, n0 + chunk)
            P = xs[:, n0:n1] * wk                                         # K, n, O(, L)
            P.mul_(inv).round_().clamp_(lo, hi)
            ac = acc[n0:n1]
            for k in range(K):
                ac.add_(P[k]).clamp_(lo, hi)
    if bq is not None:
        acc.add_(bq.view(*bshape)).clamp_(lo, hi)
    out = (acc * inv).to(torch.float32)
    return out.reshape(N, *nd["dims"]) if nd["op"] == "conv" else out


def train_epoch(torch, model, X, Y, seed, qgrad):
    Fn = torch.nn.functional
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    n = len(X)
    perm = torch.randperm(n, generator=g)
    tot, correct = 0.0, 0
    for s0 in range(0, n, TRAIN_BATCH):
        idx = perm[s0:s0 + TRAIN_BATCH]
        x, y = X[idx], Y[idx]
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = Fn.cross_entropy(out, y)
        loss.backward()
        if qgrad:
            model.quantize_param_grads()
        opt.step()
        tot += float(loss) * len(idx)
        correct += int((out.argmax(1) == y).sum())
    return tot / n, correct / n


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------

def summary(times, images):
    """median and min-max of seconds, and images/s from them"""
    med = statistics.median(times)
    return {"reps": len(times), "seconds": times, "seconds_median": med,
            "seconds_min": min(times), "seconds_max": max(times), "images": images,
            "ips_median": images / med, "ips_min": images / max(times),
            "ips_max": images / min(times)}


def machine_info(torch, qinfo):
    maps = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                p = line.split()[-1]
                if any(k in os.path.basename(p) for k in ("blas", "gomp", "omp", "dnnl", "lapack")):
                    maps.add(p)
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    fl = line.split(":", 1)[1].split()
                    flags = " ".join(f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                                 "avx512_vnni", "avx512_bf16") if f in fl)
                    break
    except OSError:
        pass
    with open("/proc/loadavg") as fh:
        load = fh.read().strip()
    return {
        "cpu": qinfo["cpu"], "nproc": qinfo["nproc"], "cpu_flags": flags,
        "kernel": platform.release(), "python": sys.version.split()[0],
        "torch": torch.__version__, "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_mkldnn": bool(torch.backends.mkldnn.is_available()),
        "torch_libs_loaded": sorted(maps),
        "qtune": {k: qinfo[k] for k in ("omp_max_threads", "openblas_threads", "openblas_config",
                                        "openblas_core", "compiler", "engine_version", "jansson")},
        "env": qinfo["env"], "loadavg_start": load,
    }


# ---------------------------------------------------------------------------
# measure: one setting
# ---------------------------------------------------------------------------

def acc_tolerance(kind, p, n):
    """allowed |top1(qtune) - top1(peer)| as a fraction"""
    if kind == "fp32":
        return 0.0
    if kind == "extr8":
        return max(0.002, 5.0 / n)
    return max(0.01, 4.0 * math.sqrt(max(p * (1 - p), 1e-4) / n))   # stochastic


def measure(a):
    torch = import_torch(a.threads)
    qt = QtBench(a.qtbench)
    tmp = tempfile.mkdtemp(prefix="qtbench-", dir=a.tmpdir)
    res = {"setting": a.setting, "date": datetime.datetime.now().astimezone().isoformat(),
           "options": vars(a).copy(), "models": [], "layers": [], "tuning": [], "errors": []}
    t_start = time.perf_counter()
    try:
        qinfo = qt("info")
        res["machine"] = machine_info(torch, qinfo)
        log("[%s] qtune: OpenBLAS core %s, %d OpenMP threads; torch %s, %d threads; load %s"
            % (a.setting, qinfo["openblas_core"], qinfo["omp_max_threads"], torch.__version__,
               torch.get_num_threads(), res["machine"]["loadavg_start"]))
        d = qt("data", tmp, a.limit)
        n_test = d["images"]
        X = torch.from_numpy(np.fromfile(os.path.join(tmp, "test_images.bin"), dtype=np.float32)
                             .reshape(n_test, *d["shape"]))
        Y = torch.from_numpy(np.fromfile(os.path.join(tmp, "test_labels.bin"), dtype=np.uint8)
                             .astype(np.int64))
        if a.train_images:
            tsz = qt("trainset", a.train_images, tmp)["images"]
            TX = torch.from_numpy(np.fromfile(os.path.join(tmp, "train_images.bin"), dtype=np.float32)
                                  .reshape(tsz, *d["shape"]))
            TY = torch.from_numpy(np.fromfile(os.path.join(tmp, "train_labels.bin"), dtype=np.uint8)
                                  .astype(np.int64))
        layers = {}
        for spec in a.layers.split(";") if a.layers else []:
            m, nodes = spec.split(":")
            layers[m] = nodes.split(",")
        for name in a.models.split(","):
            res["models"].append(measure_model(a, torch, qt, tmp, name, X, Y, n_test,
                                               (TX, TY) if a.train_images else None,
                                               layers.get(name, []), res))
        for strat in [s for s in a.strategies.split(",") if s]:
            res["tuning"].extend(measure_tuning(a, qt, strat))
    finally:
        qt.close()
        if not a.keep_tmp:
            for f in os.listdir(tmp):
                os.unlink(os.path.join(tmp, f))
            os.rmdir(tmp)
    with open("/proc/loadavg") as fh:
        res["machine"]["loadavg_end"] = fh.read().strip()
    res["total_seconds"] = time.perf_counter() - t_start
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    if res["errors"]:
        for e in res["errors"]:
            log("ERROR: " + e)
        raise SuiteError("%d correctness check(s) failed (see %s)" % (len(res["errors"]), a.out))


def measure_model(a, torch, qt, tmp, name, X, Y, n_test, train, layer_nodes, res):
    path = os.path.join(REPO, "experiments", "models", name + ".qtck")
    info = qt("model", name, path, tmp, a.calib)
    with open(os.path.join(tmp, name + ".json")) as fh:
        G = json.load(fh)
    blob = np.fromfile(os.path.join(tmp, name + ".bin"), dtype=np.float32)
    C = info["classes"]
    qlog = np.fromfile(os.path.join(tmp, name + "_logits.bin"), dtype=np.float32).reshape(n_test, C)
    out = {"model": name, "macs_per_image": info["macs"], "parameters": info["parameters"],
           "fit_range_warnings": info["fit_range_warnings"], "configs": G["configs"],
           "cases": [], "train": []}
    log("\n== %s: %.1f k MACs/image, %d parameters" % (name, info["macs"] / 1e3, info["parameters"]))

    # --- correctness of the peer's fp32 model: top-1 identical, logits close
    peer = build_peer(torch, G, blob)
    peer.eval()
    plog = logits_of(torch, peer, X, n_test)
    diff = float(np.abs(plog - qlog).max())
    same = int((plog.argmax(1) == qlog.argmax(1)).sum())
    out["fp32_check"] = {"images": n_test, "top1_identical": same, "max_abs_logit_diff": diff,
                         "tolerance": a.logit_tol}
    log("fp32 check: top-1 identical on %d/%d images, max |logit difference| %.3g (tolerance %g)"
        % (same, n_test, diff, a.logit_tol))
    if same != n_test or diff > a.logit_tol:
        res["errors"].append("%s: the peer's fp32 model differs from qtune's (top-1 identical on "
                             "%d/%d, max logit difference %.3g > %g)" % (name, same, n_test, diff,
                                                                        a.logit_tol))
        return out

    # --- inference cases, alternating qtune and the peer
    example = X[:BATCH]
    for case in ("fp32", "extr8", "extr8sr"):
        kinds = {"fp32": [None], "extr8": ["ops", "fused"], "extr8sr": ["sr"]}[case]
        variants = {}
        for k in kinds:
            m = build_peer(torch, G, blob, quant=k, seed=1)
            m.eval()
            tag = k or "fp32"
            variants["eager-" + tag] = m
            variants["frozen-" + tag] = freeze(torch, m, example)
        for fn in variants.values():        # warm-up
            run_inference(torch, fn, X, Y, min(n_test, 2 * BATCH))
        qt_t, qt_top1, pt = [], [], {v: [] for v in variants}
        ptop = {v: [] for v in variants}
        for r in range(a.reps):
            q = qt("eval", case, n_test)
            qt_t.append(q["seconds"])
            qt_top1.append(q["top1"])
            for v, fn in variants.items():
                t, acc = run_inference(torch, fn, X, Y, n_test)
                pt[v].append(t)
                ptop[v].append(acc)
        c = {"case": case, "images": n_test, "qtune": summary(qt_t, n_test),
             "qtune_top1": qt_top1[-1], "peer": {}}
        for v in variants:
            c["peer"][v] = summary(pt[v], n_test)
            c["peer"][v]["top1"] = statistics.mean(ptop[v])
        best = max(variants, key=lambda v: c["peer"][v]["ips_median"])
        c["peer_best"] = best
        c["ratio"] = c["qtune"]["ips_median"] / c["peer"][best]["ips_median"]
        tol = acc_tolerance(case, qt_top1[-1], n_test)
        c["top1_tolerance"] = tol
        worst = max(abs(c["peer"][v]["top1"] - statistics.mean(qt_top1)) for v in variants)
        c["top1_max_diff"] = worst
        log("%-8s qtune %9.0f img/s (top-1 %.2f %%) | peer best %-15s %9.0f img/s | ratio %.2fx"
            % (case, c["qtune"]["ips_median"], 100 * qt_top1[-1], best,
               c["peer"][best]["ips_median"], c["ratio"]))
        log("         peer top-1: %s; max difference %.2f pp (tolerance %.2f pp)" % (
            ", ".join("%s %.2f %%" % (v, 100 * c["peer"][v]["top1"]) for v in variants),
            100 * worst, 100 * tol))
        if worst > tol + 1e-12:
            res["errors"].append("%s %s: top-1 differs by %.3f pp > %.3f pp" % (
                name, case, 100 * worst, 100 * tol))
        out["cases"].append(c)

    # --- intrinsic, whole model (qtune only; the peer emulates single layers)
    macs = info["macs"]
    n_intr = max(a.intr_min, min(n_test, int(a.intr_macs / macs)))
    n_intr = min(n_intr, n_test)
    for case in ("intr8", "intr16"):
        ts, top = [], None
        for r in range(a.reps):
            q = qt("eval", case, n_intr)
            ts.append(q["seconds"])
            top = q["top1"]
        c = {"case": case, "images": n_intr, "qtune": summary(ts, n_intr), "qtune_top1": top,
             "ns_per_mac": 1e9 * statistics.median(ts) / (n_intr * macs)}
        log("%-8s qtune %9.1f img/s on %d images (%.1f ns/MAC wall; top-1 %.2f %%)"
            % (case, c["qtune"]["ips_median"], n_intr, c["ns_per_mac"], 100 * top))
        out["cases"].append(c)

    # --- intrinsic, single layers: qtune's layer against the torch emulation
    for node in layer_nodes:
        nd = next(n for n in G["nodes"] if n["name"] == node)
        wt = bs = None
        for p in nd["params"]:
            size = int(np.prod(p["shape"]))
            t = torch.from_numpy(blob[p["offset"]:p["offset"] + size].copy()).reshape(p["shape"])
            if p["which"] == 0:
                wt = t
            elif p["which"] == 1:
                bs = t
        for W in (8, 16):
            li = qt("layer", node, W, a.layer_images, tmp)
            N = li["images"]
            xin = torch.from_numpy(np.fromfile(os.path.join(tmp, "%s_%s_in.bin" % (name, node)),
                                               dtype=np.float32)).reshape(N, *li["in_dims"])
            qout = np.fromfile(os.path.join(tmp, "%s_%s_w%d_out.bin" % (name, node, W)),
                               dtype=np.float32).reshape(N, -1)
            mism = 0
            for var in ("loop", "batched"):
                with torch.inference_mode():
                    pout = emulate_layer(torch, nd, wt, bs, xin, li["F"], W, var).reshape(N, -1).numpy()
                mism = max(mism, int((pout != qout).sum()))
            L = {"model": name, "node": node, "op": li["op"], "width": W, "format": li["format"],
                 "images": N, "macs_per_image": li["macs_per_image"], "mismatches": mism,
                 "outputs": int(qout.size)}
            log("layer %s.%s intrinsic %s: bit-exact check %d/%d outputs differ"
                % (name, node, li["format"], mism, qout.size))
            if mism:
                res["errors"].append("%s.%s %s: the peer's emulation differs from qtune's on %d "
                                     "outputs" % (name, node, li["format"], mism))
            qts, pv = [], {"loop": [], "batched": []}
            for r in range(a.reps):
                qts.append(qt("layer_run")["seconds"])
                for var in pv:
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        emulate_layer(torch, nd, wt, bs, xin, li["F"], W, var)
                    pv[var].append(time.perf_counter() - t0)
            tot = N * li["macs_per_image"]
            best = min(pv, key=lambda v: statistics.median(pv[v]))
            pts = pv[best]
            L["qtune"] = summary(qts, N)
            L["peer"] = summary(pts, N)
            L["peer_best"] = best
            L["peer_variants"] = {v: summary(t, N) for v, t in pv.items()}
            L["qtune_ns_per_mac"] = 1e9 * statistics.median(qts) / tot
            L["peer_ns_per_mac"] = 1e9 * statistics.median(pts) / tot
            L["ratio"] = statistics.median(pts) / statistics.median(qts)
            log("         qtune %.2f ns/MAC, peer (%s) %.2f ns/MAC: qtune %.2fx the peer's speed"
                % (L["qtune_ns_per_mac"], best, L["peer_ns_per_mac"], L["ratio"]))
            res["layers"].append(L)

    # --- training
    if train is not None:
        TX, TY = train
        n = len(TX)
        for case in ("fp32", "qgrad"):
            qg = case == "qgrad"
            m = build_peer(torch, G, blob, qgrad=qg)
            train_epoch(torch, m, TX[:128], TY[:128], 2, qg)       # warm-up
            qts, pts, ql, pl = [], [], None, None
            for r in range(a.reps):
                q = qt("train", case)
                qts.append(q["seconds"])
                ql = q["loss"]
                m = build_peer(torch, G, blob, qgrad=qg)          # fresh weights, untimed
                t0 = time.perf_counter()
                pl, _ = train_epoch(torch, m, TX, TY, 1, qg)
                pts.append(time.perf_counter() - t0)
            c = {"case": case, "images": n, "qtune": summary(qts, n), "peer": summary(pts, n),
                 "qtune_loss": ql, "peer_loss": pl}
            c["ratio"] = c["qtune"]["ips_median"] / c["peer"]["ips_median"]
            log("train %-5s qtune %8.0f img/s | peer (eager) %8.0f img/s | ratio %.2fx | "
                "epoch loss qtune %.4f, peer %.4f" % (case, c["qtune"]["ips_median"],
                                                      c["peer"]["ips_median"], c["ratio"], ql, pl))
            out["train"].append(c)
    return out


TUNE_VARIANTS = [  # (label, cache_mb, early_stop, val_order)
    ("prefix+early", 256, 1, "random"), ("full", 0, 0, "random"),
    ("prefix+early, hardest first", 256, 1, "hardest_first"),
    ("prefix only", 256, 0, "random"), ("early only", 0, 1, "random"),
    ("early only, hardest first", 0, 1, "hardest_first")]


def measure_tuning(a, qt, strat):
    job = os.path.join(REPO, a.job)
    model = os.path.join(REPO, "experiments", "models", "lenet5.qtck")
    variants = TUNE_VARIANTS if a.tune_all_variants else TUNE_VARIANTS[:3]
    rows = []
    for label, cache, early, order in variants:
        r = qt("tune", job, model, strat, cache, early, a.tune_val_limit, order)
        r["variant"] = label
        w = r["work"]
        log("tune %-9s %-12s %5.1f s wall (%4.1f s search), %2d evaluations, %.3g MACs "
            "(%.3g if every one ran in full), peak RSS %.0f MiB, answer %.2fx"
            % (strat, label, r["process_wall_seconds"], r["search_seconds"], r["evaluations"],
               w["macs"], w["macs_full"], r["peak_rss_kib"] / 1024,
               r["answer"]["compression"] if r["answer"] else float("nan")))
        rows.append(r)
    return rows


# ---------------------------------------------------------------------------
# report: merge settings, targets, JSON and Markdown
# ---------------------------------------------------------------------------

def fmt_ips(s):
    return "%.0f (%.0f–%.0f)" % (s["ips_median"], s["ips_min"], s["ips_max"])


def targets_of(part):
    T = []

    def add(name, value, goal, met, note=""):
        T.append({"target": name, "value": value, "goal": goal, "met": bool(met), "note": note})

    for m in part["models"]:
        cs = {c["case"]: c for c in m["cases"]}
        if "fp32" in cs:
            add("%s fp32 inference vs PyTorch" % m["model"], cs["fp32"]["ratio"], ">= 1.5x",
                cs["fp32"]["ratio"] >= 1.5, "peer: " + cs["fp32"]["peer_best"])
        for k, lab in (("extr8", "nearest"), ("extr8sr", "stochastic")):
            if k in cs:
                add("%s extrinsic fixed<8> (%s) vs PyTorch" % (m["model"], lab), cs[k]["ratio"],
                    ">= 5x", cs[k]["ratio"] >= 5, "peer: " + cs[k]["peer_best"])
        if "intr8" in cs and "extr8" in cs:
            cost = cs["extr8"]["qtune"]["ips_median"] / cs["intr8"]["qtune"]["ips_median"]
            add("%s intrinsic W=8 cost vs qtune's extrinsic" % m["model"], cost, "<= 3x",
                cost <= 3)
        for t in m.get("train", []):
            add("%s training (%s) vs PyTorch" % (m["model"], t["case"]), t["ratio"], ">= 1.0x",
                t["ratio"] >= 1.0, "peer: eager")
    for L in part["layers"]:
        if L["width"] == 8:
            add("%s.%s intrinsic W=8 vs the peer's emulation" % (L["model"], L["node"]),
                L["ratio"], ">= 100x", L["ratio"] >= 100, "per MAC, same layer and images")
    by = {}
    for r in part["tuning"]:
        by.setdefault(r["strategy"], {})[r["variant"]] = r
    for strat, v in by.items():
        for pe in ("prefix+early", "prefix+early, hardest first"):
            if pe not in v or "full" not in v:
                continue
            red = v["full"]["work"]["macs"] / max(v[pe]["work"]["macs"], 1)
            same = v["full"]["answer"] == v[pe]["answer"] or (
                v["full"]["answer"] and v[pe]["answer"] and
                v["full"]["answer"]["formats"] == v[pe]["answer"]["formats"])
            order = "val_order " + v[pe]["val_order"]
            if strat == "bisection":
                add("lenet5 bisection MACs cut by prefix reuse + early stop (%s)" % order, red,
                    ">= 5x, same answer", red >= 5 and same,
                    "same answer" if same else "ANSWER DIFFERS")
            else:
                T.append({"target": "lenet5 %s MACs cut, %s (no target)" % (strat, order),
                          "value": red, "goal": "-", "met": None,
                          "note": "same answer" if same else "ANSWER DIFFERS"})
        for lab, r in v.items():
            if lab.startswith("prefix+early"):
                add("lenet5 %s tuning peak RSS" % strat, r["peak_rss_kib"] / 1024, "<= 1024 MiB",
                    0 < r["peak_rss_kib"] <= 1024 * 1024, "cache_mb %d" % r["cache_mb"])
    return T


def write_md(parts, command, fh):
    w = fh.write
    w("# qtune against PyTorch (issue #8 benchmark suite)\n\n")
    w("Command: `%s`\n\n" % command)
    p0 = parts[0]
    mc = p0["machine"]
    w("Machine: %s, %d CPUs (%s); Linux %s; Python %s, torch %s (MKL-DNN %s), numpy %s; "
      "qtune engine v%d, %s; %s.\n\n" % (
          mc["cpu"], mc["nproc"], mc["cpu_flags"], mc["kernel"], mc["python"], mc["torch"],
          "on" if mc["torch_mkldnn"] else "off", mc["numpy"], mc["qtune"]["engine_version"],
          mc["qtune"]["compiler"], mc["qtune"]["openblas_config"]))
    o = p0["options"]
    w("Options: models %s, %d test images (batch 256), %d threads, %d repetitions (qtune and "
      "the peer alternately, A B A B), intrinsic whole-model cases on a MAC budget of %.3g, "
      "single layers on %d images, training %d images (batch 64, SGD lr 0.01 momentum 0.9), "
      "tuning jobs %s (val_limit %s).\n\n" % (
          o["models"], p0["models"][0]["cases"][0]["images"] if p0["models"] and p0["models"][0]["cases"] else 0,
          o["threads"], o["reps"], o["intr_macs"], o["layer_images"], o["train_images"], o["job"],
          o["tune_val_limit"] or "the job's"))
    w("Cells are images/s: median (min–max) over the repetitions; ratio = qtune / the peer's "
      "fastest variant (eager or TorchScript-frozen; ops = scale, round, clamp, rescale; fused = "
      "torch.fake_quantize_per_tensor_affine).\n\n")
    for p in parts:
        mc = p["machine"]
        w("## Setting: %s\n\n" % p["setting"])
        w("Environment: %s. qtune's OpenBLAS core: %s. Load average at start %s, at end %s. "
          "Run took %.0f s.\n\n" % (
              ", ".join("%s=%s" % (k, v) for k, v in mc["env"].items() if v is not None),
              mc["qtune"]["openblas_core"], mc["loadavg_start"], mc.get("loadavg_end", "?"),
              p.get("total_seconds", 0)))
        w("### Inference (full model, cases 1–3)\n\n")
        w("| model | case | qtune img/s | top-1 | peer (best variant) img/s | peer top-1 | ratio | other peer variants |\n")
        w("|---|---|---|---|---|---|---|---|\n")
        for m in p["models"]:
            for c in m["cases"]:
                if "peer" in c:
                    b = c["peer_best"]
                    others = "; ".join("%s %.0f" % (v, s["ips_median"]) for v, s in c["peer"].items()
                                       if v != b)
                    w("| %s | %s | %s | %.2f %% | %s: %s | %.2f %% | %.2fx | %s |\n" % (
                        m["model"], c["case"], fmt_ips(c["qtune"]), 100 * c["qtune_top1"], b,
                        fmt_ips(c["peer"][b]), 100 * c["peer"][b]["top1"], c["ratio"], others))
                else:
                    w("| %s | %s | %s | %.2f %% | – (%d images; %.1f ns/MAC) | | | |\n" % (
                        m["model"], c["case"], fmt_ips(c["qtune"]), 100 * c["qtune_top1"],
                        c["images"], c["ns_per_mac"]))
        w("\nfp32 check (peer vs qtune, test images): " + "; ".join(
            "%s top-1 identical %d/%d, max |logit diff| %.2g" % (
                m["model"], m["fp32_check"]["top1_identical"], m["fp32_check"]["images"],
                m["fp32_check"]["max_abs_logit_diff"]) for m in p["models"]) + ".\n\n")
        if p["layers"]:
            w("### Intrinsic bit-true fixed point, single layers (case 3)\n\n")
            w("| layer | format | images | qtune ns/MAC | peer ns/MAC (best variant) | qtune speed-up | bit-exact |\n")
            w("|---|---|---|---|---|---|---|\n")
            for L in p["layers"]:
                w("| %s.%s (%s) | %s | %d | %.2f | %.2f (%s) | %.1fx | %s |\n" % (
                    L["model"], L["node"], L["op"], L["format"], L["images"], L["qtune_ns_per_mac"],
                    L["peer_ns_per_mac"], L.get("peer_best", "loop"), L["ratio"],
                    "yes" if not L["mismatches"] else "NO (%d)" % L["mismatches"]))
            w("\n")
        if any(m["train"] for m in p["models"]):
            w("### Training (case 5), one epoch, batch 64\n\n")
            w("| model | case | qtune img/s | peer (eager) img/s | ratio | epoch loss qtune / peer |\n")
            w("|---|---|---|---|---|---|\n")
            for m in p["models"]:
                for t in m["train"]:
                    w("| %s | %s | %s | %s | %.2fx | %.4f / %.4f |\n" % (
                        m["model"], t["case"], fmt_ips(t["qtune"]), fmt_ips(t["peer"]), t["ratio"],
                        t["qtune_loss"], t["peer_loss"]))
            w("\n")
        if p["tuning"]:
            w("### Tuning jobs on lenet5 (case 4)\n\n")
            w("| strategy | variant | wall s | search s | evaluations | MACs | MACs in full | cut | "
              "prefix hits | peak RSS MiB | answer |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
            for r in p["tuning"]:
                wk = r["work"]
                an = r["answer"]
                w("| %s | %s (cache_mb %d, early_stop %s) | %.1f | %.1f | %d | %.3g | %.3g | %.2fx | "
                  "%d/%d | %.0f | %s |\n" % (
                      r["strategy"], r["variant"], r["cache_mb"], "on" if r["early_stop"] else "off",
                      r["process_wall_seconds"], r["search_seconds"], r["evaluations"], wk["macs"],
                      wk["macs_full"], wk["macs_full"] / max(wk["macs"], 1), wk["prefix_hits"],
                      wk["prefix_batches"], r["peak_rss_kib"] / 1024,
                      "%.2fx, val %.2f %%" % (an["compression"], 100 * an["val_top1"]) if an else "-"))
            w("\n")
        w("### Targets\n\n| target | value | goal | met | note |\n|---|---|---|---|---|\n")
        for t in targets_of(p):
            w("| %s | %.3g | %s | %s | %s |\n" % (
                t["target"], t["value"], t["goal"],
                "-" if t["met"] is None else ("MET" if t["met"] else "NOT MET"), t["note"]))
        w("\n")


def report(a):
    parts = []
    for f in a.parts:
        with open(f) as fh:
            parts.append(json.load(fh))
    for p in parts:
        p["targets"] = targets_of(p)
    root = {"program": "experiments/bench/run.sh", "command": a.command,
            "date": datetime.datetime.now().astimezone().isoformat(), "settings": parts}
    with open(a.json, "w") as fh:
        json.dump(root, fh, indent=1)
    with open(a.md, "w") as fh:
        write_md(parts, a.command, fh)
    log("wrote %s and %s" % (a.json, a.md))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="phase", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--setting", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--qtbench", required=True)
    m.add_argument("--models", default="mlp,lenet5,resnet")
    m.add_argument("--limit", type=int, default=10000, help="test images (0: all)")
    m.add_argument("--reps", type=int, default=5)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--calib", type=int, default=512)
    m.add_argument("--intr-macs", type=float, default=5e8)
    m.add_argument("--intr-min", type=int, default=64)
    m.add_argument("--layers", default="lenet5:conv2,fc3")
    m.add_argument("--layer-images", type=int, default=256)
    m.add_argument("--train-images", type=int, default=10000)
    m.add_argument("--strategies", default="bisection,hybrid")
    m.add_argument("--job", default="experiments/jobs/lenet5_hybrid.json")
    m.add_argument("--tune-val-limit", type=int, default=0, help="0: the job's")
    m.add_argument("--tune-all-variants", type=int, default=1)
    m.add_argument("--logit-tol", type=float, default=1e-4)
    m.add_argument("--tmpdir", default=None)
    m.add_argument("--keep-tmp", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("--json", required=True)
    r.add_argument("--md", required=True)
    r.add_argument("--command", required=True)
    r.add_argument("parts", nargs="+")
    a = ap.parse_args()
    try:
        if a.phase == "measure":
            measure(a)
        else:
            report(a)
    except SuiteError as e:
        log("suite.py: error: %s" % e)
        sys.exit(1)


if __name__ == "__main__":
    main()
