#!/usr/bin/python3
"""lenet5.py -- train qtune's zoo LeNet-5 in PyTorch on qtune's Fashion-MNIST
training split, export it to ONNX, and record reference accuracies and
predictions for testing qtune's ONNX importer.

Run with Debian's Python and PyTorch (torch 1.13, CPU), from any directory:

    /usr/bin/python3 experiments/onnx_torch/lenet5.py

Writes experiments/models/lenet5_torch.onnx (and lenet5bn_torch.onnx, the
BatchNorm + Dropout variant, unless --no-bn) and
experiments/results/onnx_lenet5.json. See README.md beside this file.
"""
import argparse
import gzip
import json
import os
import sys
import time
import warnings
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import onnx_dump  # noqa: E402

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
VAL_COUNT = 10000
VAL_SEED = 0x5EED5EED          # engine/data.c VAL_SEED
M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
OPSET = 13

# ---------------------------------------------------------------------------
# Data: engine/data.c
# ---------------------------------------------------------------------------


def read_idx(path):
    """An IDX file, gzip or plain (path.gz first, then path)."""
    for p in (path + ".gz", path):
        if os.path.exists(p):
            with open(p, "rb") as fh:
                raw = fh.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            break
    else:
        raise FileNotFoundError("%s(.gz) not found (Debian package dataset-fashion-mnist)" % path)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError("%s: not an unsigned-byte IDX file" % p)
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(nd)]
    off = 4 + 4 * nd
    n = int(np.prod(dims))
    return np.frombuffer(raw, dtype=np.uint8, count=n, offset=off).reshape(dims), p


def normalise(raw):
    """((float)raw * (1.0f/255.0f) - 0.2860f) / 0.3530f, all in float32
    (qt_dataset_load_idx; the engine builds with -ffp-contract=off)."""
    scale = np.float32(1.0) / np.float32(255.0)
    x = raw.astype(np.float32) * scale
    x = x - np.float32(0.2860)
    x = x / np.float32(0.3530)
    assert x.dtype == np.float32
    return x.reshape(raw.shape[0], 1, raw.shape[-2], raw.shape[-1])


def splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def qt_key(seed, stream):
    """quant/quant.c qt__key"""
    k = splitmix64((seed ^ splitmix64((stream + 0x51ED2701) & M64)) & M64)
    return k & M32, k >> 32


def mix32(x):
    """quant/internal.h qt__mix32"""
    x ^= x >> 17
    x = (x * 0xED5AD4BB) & M32
    x ^= x >> 11
    x = (x * 0xAC4C1B51) & M32
    x ^= x >> 15
    x = (x * 0x31848BAB) & M32
    x ^= x >> 14
    return x


def rand_k(key, index):
    """quant/internal.h qt__rand_k = qt_rand32(seed, stream, index)"""
    lo, hi = index & M32, (index >> 32) & M32
    return mix32(((lo ^ key[0]) + mix32(hi ^ key[1])) & M32)


def permutation(n, seed):
    """engine/data.c permutation(): Fisher-Yates with the counter RNG."""
    p = list(range(n))
    if seed == 0:
        return p
    ka, kb = qt_key(seed, 0x9E37), qt_key(seed, 0x79B9)
    for i in range(n, 1, -1):
        r = (rand_k(ka, i) << 32) | rand_k(kb, i)
        j = r % i
        p[i - 1], p[j] = p[j], p[i - 1]
    return p


def load_fashion_mnist():
    """qt_dataset_fashion_mnist: TRAIN, VAL (seeded split) and TEST."""
    d = os.environ.get("QT_DATA_DIR") or FMNIST_DIR
    tri, tri_path = read_idx(os.path.join(d, "train-images-idx3-ubyte"))
    trl, _ = read_idx(os.path.join(d, "train-labels-idx1-ubyte"))
    tei, tei_path = read_idx(os.path.join(d, "t10k-images-idx3-ubyte"))
    tel, _ = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte"))
    x, y = normalise(tri), trl.astype(np.int64)
    perm = np.array(permutation(len(x), VAL_SEED), dtype=np.int64)
    ntrain = len(x) - VAL_COUNT
    tr, va = perm[:ntrain], perm[ntrain:]
    return {
        "dir": d, "files": [tri_path, tei_path],
        "train": (x[tr], y[tr]), "val": (x[va], y[va]),
        "test": (normalise(tei), tel.astype(np.int64)),
        "val_indices": va,
    }

# ---------------------------------------------------------------------------
# Models: engine/zoo.c build_lenet5 (module names = qtune's node names)
# ---------------------------------------------------------------------------


class LeNet5(nn.Module):
    def __init__(self, bn=False, dropout=0.0):
        super().__init__()
        self.bn = bn
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2, bias=True)
        if bn:
            self.bn1 = nn.BatchNorm2d(6, eps=1e-5, momentum=0.1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=0, bias=True)
        if bn:
            self.bn2 = nn.BatchNorm2d(16, eps=1e-5, momentum=0.1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc3 = nn.Linear(400, 120)
        self.relu3 = nn.ReLU()
        self.fc4 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.fc5 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.conv1(x)
        if self.bn:
            x = self.bn1(x)
        x = self.pool1(self.relu1(x))
        x = self.conv2(x)
        if self.bn:
            x = self.bn2(x)
        x = self.pool2(self.relu2(x))
        x = self.flatten(x)
        x = self.relu3(self.fc3(x))
        x = self.relu4(self.fc4(x))
        if self.drop is not None:
            x = self.drop(x)
        return self.fc5(x)


VARIANTS = OrderedDict([
    ("lenet5", dict(bn=False, dropout=0.0, preserve=False,
                    desc="qtune zoo lenet5: conv1 6@5x5 pad 2, relu, maxpool 2, conv2 16@5x5, relu, "
                         "maxpool 2, flatten, fc3 400->120, relu, fc4 120->84, relu, fc5 84->10")),
    # exported with TrainingMode.PRESERVE (the model is in eval mode, so the
    # numerics are those of eval): TrainingMode.EVAL would run torch's eval
    # peephole pass, which folds each BatchNorm into its Conv, and the ONNX
    # would be plain lenet5. Dropout is dropped in eval mode either way.
    ("lenet5bn", dict(bn=True, dropout=0.3, preserve=True,
                      desc="lenet5 with BatchNorm2d (eps 1e-5, momentum 0.1) after conv1 and conv2 "
                           "and Dropout(0.3) before fc5")),
])

# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------


def logits_of(model, x, batch=1000):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i:i + batch])).numpy())
    return np.concatenate(out).astype(np.float32)


def top1(logits, y):
    pred = np.argmax(logits, axis=1)       # numpy: first maximum on ties
    return pred, int((pred == y).sum())


def train(model, data, s, seed):
    xtr, ytr = torch.from_numpy(data["train"][0]), torch.from_numpy(data["train"][1])
    xva, yva = data["val"]
    opt = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"],
                          weight_decay=s["weight_decay"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=s["lr_step"], gamma=s["lr_gamma"])
    lossf = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    n, b = len(xtr), s["batch"]
    history = []
    for ep in range(s["epochs"]):
        t0 = time.time()
        model.train()
        order = torch.randperm(n, generator=gen)
        tot_loss, correct = 0.0, 0
        lr = opt.param_groups[0]["lr"]
        for i in range(0, n, b):
            idx = order[i:i + b]
            x, y = xtr[idx], ytr[idx]
            opt.zero_grad()
            out = model(x)
            loss = lossf(out, y)
            loss.backward()
            opt.step()
            tot_loss += loss.item() * len(idx)
            correct += int((out.argmax(1) == y).sum())
        sched.step()
        _, vc = top1(logits_of(model, xva), yva)
        rec = {"epoch": ep + 1, "lr": lr, "loss": tot_loss / n, "train_acc": correct / n,
               "val_acc": vc / len(yva), "seconds": round(time.time() - t0, 2)}
        history.append(rec)
        print("  epoch %2d  lr %.4g  loss %.4f  train %.4f  val %.4f  %.1f s" % (
            rec["epoch"], lr, rec["loss"], rec["train_acc"], rec["val_acc"], rec["seconds"]),
            flush=True)
    return history


def export(model, path, preserve=False):
    model.eval()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():
        # PRESERVE + constant folding warns about models in training mode;
        # this one is in eval mode
        warnings.filterwarnings("ignore", message=".*constant folding be turned off.*")
        torch.onnx.export(model, torch.zeros(1, 1, 28, 28), path, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True, export_params=True, training=mode)
    g = onnx_dump.summary(path)
    ops = [n["op_type"] for n in g["nodes"]]
    if "Identity" in ops:
        # torch de-duplicates initializers of equal value into Identity nodes
        print("  warning: %s holds Identity nodes (equal-valued parameters)" % path, flush=True)
    return g, "PRESERVE (model in eval mode)" if preserve else "EVAL"


def run_variant(name, data, s, seed, model_dir):
    v = VARIANTS[name]
    print("%s: %s" % (name, v["desc"]), flush=True)
    torch.manual_seed(seed)
    model = LeNet5(bn=v["bn"], dropout=v["dropout"])
    t0 = time.time()
    history = train(model, data, s, seed)
    train_s = time.time() - t0
    model.eval()
    (xva, yva), (xte, yte) = data["val"], data["test"]
    _, vc = top1(logits_of(model, xva), yva)
    lte = logits_of(model, xte)
    pred, tc = top1(lte, yte)
    path = os.path.join(model_dir, "%s_torch.onnx" % name)
    g, mode = export(model, path, v["preserve"])
    print("  val %d/%d = %.4f  test %d/%d = %.4f  -> %s" % (
        vc, len(yva), vc / len(yva), tc, len(yte), tc / len(yte), path), flush=True)
    return {
        "description": v["desc"],
        "model": os.path.relpath(path, REPO) if path.startswith(REPO) else path,
        "train_seconds": round(train_s, 1),
        "val_top1": vc / len(yva), "val_correct": vc, "val_total": len(yva),
        "test_top1": tc / len(yte), "test_correct": tc, "test_total": len(yte),
        "test_predictions": "".join(str(int(c)) for c in pred),
        "test_logits_first32": lte[:32],
        "history": history,
        "onnx": {"export_training_mode": mode, "opset": g["opset"], "producer": g["producer"],
                 "inputs": g["inputs"], "outputs": g["outputs"],
                 "initializers": g["initializers"],
                 "nodes": [{"op_type": n["op_type"], "name": n["name"], "inputs": n["inputs"],
                            "outputs": n["outputs"]} for n in g["nodes"]]},
    }


def dump_json(obj, path):
    """JSON with float32 logits printed with 9 significant digits."""
    subs = {}

    def prep(o):
        if isinstance(o, np.ndarray):
            key = "@@F32_%d@@" % len(subs)
            subs[key] = "[" + ",\n  ".join(
                "[" + ", ".join("%.9g" % float(v) for v in row) + "]" for row in o) + "]"
            return key
        if isinstance(o, dict):
            return {k: prep(v) for k, v in o.items()}
        if isinstance(o, list):
            return [prep(v) for v in o]
        return o

    text = json.dumps(prep(obj), indent=2)
    for k, v in subs.items():
        text = text.replace('"%s"' % k, v)
    json.loads(text)                        # still valid JSON
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--out-dir", default=os.path.join(REPO, "experiments"),
                    help="writes OUT_DIR/models/*.onnx and OUT_DIR/results/onnx_lenet5.json "
                         "(default: the repository's experiments/)")
    ap.add_argument("--quick", action="store_true", help="1 epoch, for smoke tests")
    ap.add_argument("--no-bn", action="store_true", help="skip the BatchNorm/Dropout variant")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    s = {"optimizer": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
         "lr_step": 6, "lr_gamma": 0.1, "batch": 64, "epochs": 1 if a.quick else a.epochs,
         "loss": "cross-entropy (mean)", "seed": a.seed, "threads": a.threads,
         "shuffle": "torch.randperm per epoch from torch.Generator seeded with seed",
         "init": "PyTorch defaults after torch.manual_seed(seed)"}
    out_dir = os.path.abspath(a.out_dir)
    model_dir, res_dir = os.path.join(out_dir, "models"), os.path.join(out_dir, "results")

    t0 = time.time()
    data = load_fashion_mnist()
    print("data: %s: train %d, val %d, test %d (%.1f s)" % (
        data["dir"], len(data["train"][1]), len(data["val"][1]), len(data["test"][1]),
        time.time() - t0), flush=True)

    names = ["lenet5"] if a.no_bn else list(VARIANTS)
    res = OrderedDict()
    res["torch_version"] = torch.__version__
    res["numpy_version"] = np.__version__
    res["python"] = sys.executable + " " + sys.version.split()[0]
    res["opset"] = OPSET
    res["command"] = " ".join([sys.executable, os.path.relpath(os.path.abspath(__file__), REPO)]
                              + sys.argv[1:]) + "   (from the repository root)"
    res["data"] = {
        "dir": data["dir"], "files": data["files"],
        "normalisation": "float32: (pixel * (1/255) - 0.2860) / 0.3530",
        "split": "qt_dataset_fashion_mnist: validation = last 10000 of the seeded permutation "
                 "(seed 0x5eed5eed) of the 60000 training images, training = the first 50000",
        "train": len(data["train"][1]), "val": len(data["val"][1]), "test": len(data["test"][1]),
        "val_first_indices": [int(i) for i in data["val_indices"][:16]],
    }
    res["training"] = s
    res["export"] = {"opset_version": OPSET, "input_names": ["input"], "output_names": ["logits"],
                     "dynamic_axes": {"input": {"0": "batch"}, "logits": {"0": "batch"}},
                     "do_constant_folding": True, "model_mode": "eval",
                     "training": "TrainingMode.EVAL for lenet5, TrainingMode.PRESERVE for lenet5bn "
                                 "(keeps BatchNormalization nodes unfolded)"}
    for n in names:
        res[n] = run_variant(n, data, s, a.seed, model_dir)
    res["run_seconds"] = round(time.time() - t_start, 1)
    path = os.path.join(res_dir, "onnx_lenet5.json")
    dump_json(res, path)
    print("wrote %s (%.1f s in all)" % (path, res["run_seconds"]), flush=True)


if __name__ == "__main__":
    main()
