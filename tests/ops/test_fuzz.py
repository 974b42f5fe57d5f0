"""Seeded fuzzing of every registered native operator, each call in a child process.

Per operator (``gluon_models.ops.info()['operators']``, one entry in :data:`GENERATORS`) a seeded
generator makes valid calls and then mutates them: attribute strings (garbage, negative, huge,
nan, unknown keys, missing keys), input shapes (ndim 0-9, zero extents, unknown shapes and
dimensions in symbolic mode), dtypes, missing inputs, legacy or numpy shape semantics. Each call
runs one way: eagerly (``mx.nd``), through ``infer_shape``/``infer_shape_partial``/
``infer_type``, or bound (``simple_bind`` as Module does) with forward and backward.

Asserted: no call crashes the child; every failure is an MXNetError or ValueError whose message
names something (a quoted argument, input or node); every success gives the shape the operator
defines and, eagerly and bound, the values of the numpy reference. A batch of calls runs in one
child, which prints each call before running it, so a crash names the call that caused it.
"""
import json
import os
import random
import re
import subprocess
import sys
import textwrap

import pytest

import gluon_models

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GARBAGE = ["", "abc", "-1", "0", "nan", "inf", "-inf", "1e309", "99999999999999999999",
           "2147483648", "(3,)", "(1, 2, 3)", "[2, 2]", "True", "None", "(-1, 2)", "3.5",
           " 2 ", "(,)", "((1))", "0x10", "1,", "(0, 0)"]
DTYPES = ["float32", "float32", "float32", "float64", "float16", "int32", "uint8"]
MODES = ["nd", "nd", "infer_shape", "infer_shape_partial", "infer_type", "bind"]


# ---- per-operator generators of valid calls: (attrs, input names, input shapes) -------------
def gen_reorder(rng):
    B = rng.randint(1, 4)
    shape = [rng.randint(0, 3) for _ in range(rng.randint(2, 5))]
    shape[1] = B * rng.randint(0, 3)
    return {"branch_factor": str(B)}, ["data"], [tuple(shape)]


def gen_fmconv(rng):
    G = rng.choice([1, 1, 2])
    O, F, C = G * rng.randint(1, 3), rng.randint(1, 4), G * rng.randint(0, 3)
    k = (rng.choice([1, 2, 3]), rng.choice([1, 3]))
    s, p, d = [(rng.randint(1, 2), rng.randint(1, 2)) for _ in range(3)]
    p = (p[0] - 1 + rng.randint(0, 1), p[1] - 1)
    no_bias = rng.random() < 0.3
    attrs = {"kernel": str(k), "num_filter": str(O), "num_factor": str(F), "num_group": str(G),
             "stride": str(s), "pad": str(p), "dilate": str(d), "no_bias": str(no_bias)}
    if rng.random() < 0.2:
        attrs["workspace"] = str(rng.choice([0, 1, 64]))
    names = ["data", "weight"] + ([] if no_bias else ["bias"]) + ["factor_mask"]
    shapes = [(rng.randint(0, 3), C, rng.randint(0, 5), rng.randint(0, 5)),
              (O, F, C // G) + k] + ([] if no_bias else [(O,)]) + [(F,)]
    return attrs, names, shapes


def gen_isqrtcov(rng):
    C = rng.randint(1, 4)
    attrs = {}
    if rng.random() < 0.7:
        attrs["iter_num"] = str(rng.choice([0, 1, 2, 3, 5]))
    for key in ("sqrt", "vectorize"):
        if rng.random() < 0.4:
            attrs[key] = str(rng.random() < 0.5)
    if rng.random() < 0.3:
        attrs["eps"] = rng.choice(["0", "1e-8", "0.5"])
    data = (rng.randint(0, 3), C, rng.randint(1, 4), rng.randint(1, 4))
    if attrs.get("vectorize", "True") == "False":
        return attrs, ["data"], [data], ["float32"]
    # the index input is int32 (the bound path fills inputs with uniform(-1, 1): position 0)
    return attrs, ["data", "index"], [data, (rng.randint(0, C * C),)], ["float32", "int32"]


def gen_ibn(rng):
    C = rng.randint(2, 6)
    ci, cb = rng.randint(1, C - 1), None
    cb = C - ci
    attrs = {"in_channels": str(ci)}
    if rng.random() < 0.5:
        attrs["in_first"] = str(rng.random() < 0.5)
    if rng.random() < 0.3:
        attrs["eps"] = str(rng.choice([1e-5, 2e-5, 0.1]))
    if rng.random() < 0.3:
        attrs["momentum"] = str(rng.choice([0.0, 0.9, 1.0]))
    names = ["data", "in_gamma", "in_beta", "bn_gamma", "bn_beta", "train_flag", "moving_mean",
             "moving_var"]
    data = (rng.randint(0, 3), C) + tuple(rng.randint(0, 3) for _ in range(rng.randint(1, 3)))
    return attrs, names, [data, (ci,), (ci,), (cb,), (cb,), (1,), (cb,), (cb,)]


def gen_igcsecondary(rng):
    L = rng.randint(1, 4)
    shape = [rng.randint(0, 3) for _ in range(rng.randint(2, 5))]
    shape[1] = L * rng.randint(0, 3)
    dtype = rng.choice(["float32", "float32", "float64"])
    return ({"primary": str(L)}, ["data", "weight"], [tuple(shape), (shape[1], L, 1, 1)],
            [dtype, dtype])


def gen_bnrelu(rng):
    C = rng.randint(0, 4)
    attrs = {}
    if rng.random() < 0.5:
        attrs["relu"] = str(rng.random() < 0.5)
    if rng.random() < 0.3:
        attrs["eps"] = str(rng.choice([1e-5, 0.1]))
    if rng.random() < 0.3:
        attrs["momentum"] = str(rng.choice([0.0, 0.9, 1.0]))
    names = ["data", "gamma", "beta", "train_flag", "moving_mean", "moving_var"]
    data = (rng.randint(0, 3), C) + tuple(rng.randint(0, 3) for _ in range(rng.randint(0, 3)))
    dtype = rng.choice(["float32", "float32", "float64"])
    shapes = [data, (C,), (C,), (1,), (C,), (C,)]
    if rng.random() < 0.4:
        attrs["residual"] = "True"
        names, shapes = names + ["residual"], shapes + [data]
    return attrs, names, shapes, [dtype] * len(names)


def gen_groupconv(rng):
    G = rng.choice([1, 2, 3])
    O, C = G * rng.randint(1, 5), G * rng.randint(0, 3)
    k = (rng.choice([1, 2, 3]), rng.choice([1, 3]))
    s, p = [(rng.randint(1, 2), rng.randint(1, 2)) for _ in range(2)]
    p = (p[0] - 1, p[1] - 1 + rng.randint(0, 1))
    attrs = {"kernel": str(k), "num_filter": str(O), "num_group": str(G), "stride": str(s),
             "pad": str(p)}
    dtype = rng.choice(["float32", "float32", "float64"])
    return (attrs, ["data", "weight"],
            [(rng.randint(0, 3), C, rng.randint(0, 6), rng.randint(0, 6)), (O, C // G) + k],
            [dtype, dtype])


GENERATORS = {"Reorder": gen_reorder, "FMConvolution1": gen_fmconv, "FMConvolution3": gen_fmconv,
              "ISqrtCov": gen_isqrtcov, "IBN": gen_ibn, "IGCSecondary": gen_igcsecondary,
              "BNReLU": gen_bnrelu, "GroupConv": gen_groupconv}


def random_shape(rng):
    return tuple(rng.choice([0, 1, 1, 2, 3, 4]) for _ in range(rng.randint(0, 9)))


def make_call(rng, op):
    spec = GENERATORS[op](rng)  # attrs, names, shapes[, dtypes (default float32)]
    attrs, names, shapes = spec[:3]
    dtypes = list(spec[3]) if len(spec) > 3 else ["float32"] * len(names)
    call = {"op": op, "mode": rng.choice(MODES), "np_shape": rng.random() < 0.5,
            "attrs": attrs, "names": names, "shapes": [list(s) for s in shapes],
            "dtypes": dtypes, "train": rng.random() < 0.5}
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        kind = rng.choice(["attr", "attr", "drop_attr", "new_attr", "shape", "shape", "dim",
                           "unknown", "dtype", "dtype_all", "missing"])
        i = rng.randrange(len(call["names"])) if call["names"] else 0
        if kind == "attr" and call["attrs"]:
            call["attrs"][rng.choice(sorted(call["attrs"]))] = rng.choice(GARBAGE)
        elif kind == "drop_attr" and call["attrs"]:
            call["attrs"].pop(rng.choice(sorted(call["attrs"])))
        elif kind == "new_attr":
            call["attrs"][rng.choice(["bogus", "scale", "__hidden__"])] = rng.choice(GARBAGE)
        elif kind == "shape" and call["names"]:
            call["shapes"][i] = list(random_shape(rng))
        elif kind == "dim" and call["shapes"] and call["shapes"][i]:
            call["shapes"][i][rng.randrange(len(call["shapes"][i]))] = rng.choice([0, 1, 7, 100])
        elif kind == "unknown" and call["names"] and call["mode"] != "nd":  # symbolic only
            if rng.random() < 0.5 or not call["shapes"][i]:
                call["shapes"][i] = None
            else:
                call["shapes"][i][rng.randrange(len(call["shapes"][i]))] = -1
        elif kind == "dtype" and call["names"]:
            call["dtypes"][i] = rng.choice(DTYPES)
        elif kind == "dtype_all":
            call["dtypes"] = [rng.choice(DTYPES)] * len(call["names"])
        elif kind == "missing" and call["names"]:
            for key in ("names", "shapes", "dtypes"):
                call[key] = call[key][:-1]
    return call


CHILD = textwrap.dedent("""
    import json, os, sys
    os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
    import numpy as np
    import mxnet as mx
    from mxnet.base import MXNetError
    import gluon_models
    from tests.ops.test_fmconv import np_fmconv, out_size
    from tests.ops.test_reorder import np_reorder
    from tests.ops.test_isqrtcov import np_isqrtcov
    from tests.nn.test_ibn import np_ibn
    from tests.ops.test_igcsecondary import np_igc_secondary
    from tests.ops.test_bnrelu import np_bnrelu
    from tests.ops.test_groupconv import np_group_conv

    def tup(text):
        vals = [int(v) for v in text.strip("()[] ").split(",") if v.strip()]
        return tuple(vals * 2 if len(vals) == 1 else vals)

    def num(text):  # the operators read numbers with strtod, which also takes hex floats
        try:
            return float(text)
        except ValueError:
            return float.fromhex(text.strip())

    def reference(op, attrs, xs):
        # numpy output of a call the operator accepted (the generator's attributes are plain)
        if op == "Reorder":
            return np_reorder(xs[0], int(attrs["branch_factor"]))
        if op == "IGCSecondary":
            return np_igc_secondary(xs[0], xs[1], int(attrs["primary"]))
        if op == "GroupConv":
            return np_group_conv(xs[0], xs[1], int(attrs.get("num_group", "1")),
                                 tup(attrs.get("stride", "1")), tup(attrs.get("pad", "0")))
        if op == "ISqrtCov":
            vec = attrs.get("vectorize", "True") == "True"
            return np_isqrtcov(xs[0], xs[1].astype(np.int64) if vec else None,
                               iter_num=int(attrs.get("iter_num", "5")),
                               sqrt=attrs.get("sqrt", "True") == "True", vectorize=vec,
                               eps=float(attrs.get("eps", "0")))
        if op == "BNReLU":  # train_flag > 0.5: batch statistics
            with np.errstate(all="ignore"):
                return np_bnrelu(xs[0], xs[1], xs[2], xs[4], xs[5], xs[3][0] > 0.5,
                                 attrs.get("relu", "True") == "True",
                                 num(attrs.get("eps", "1e-5")),
                                 xs[6] if attrs.get("residual") == "True" else None)[0]
        if op == "IBN":  # train_flag > 0.5: batch statistics for the BN group
            with np.errstate(all="ignore"):
                return np_ibn(xs[0], xs[1:5] + xs[6:], int(attrs["in_channels"]),
                              attrs.get("in_first", "True") == "True",
                              num(attrs.get("eps", "1e-5")), xs[5][0] > 0.5)[0]
        no_bias = attrs.get("no_bias", "False") == "True"
        b = np.zeros(xs[1].shape[0]) if no_bias else xs[2]
        return np_fmconv(xs[0], xs[1], b, xs[-1], tup(attrs["kernel"]),
                         tup(attrs.get("stride", "1")), tup(attrs.get("pad", "0")),
                         tup(attrs.get("dilate", "1")), int(attrs.get("num_group", "1")))

    def want_shape(op, attrs, data, shapes=None):
        if op in ("Reorder", "IBN", "IGCSecondary", "BNReLU"):
            return tuple(data)
        if op == "ISqrtCov":
            if attrs.get("vectorize", "True") == "True":
                return (data[0], shapes[1][0])
            return (data[0], data[1], data[1])
        (kh, kw), (sh, sw) = tup(attrs["kernel"]), tup(attrs.get("stride", "1"))
        (ph, pw), (dh, dw) = tup(attrs.get("pad", "0")), tup(attrs.get("dilate", "1"))
        return (data[0], int(attrs["num_filter"]), out_size(data[2], kh, sh, ph, dh),
                out_size(data[3], kw, sw, pw, dw))

    def arrays(c, rs):
        with mx.util.np_shape(True):  # legacy mode could not even create 0-d or empty arrays
            return [mx.nd.array(rs.uniform(-1, 1, s), dtype=t)
                    for s, t in zip(c["shapes"], c["dtypes"])]

    def check_values(c, got, arrs):
        if c["op"] == "ISqrtCov":
            if c["dtypes"][0] not in ("float32", "float64") or c["dtypes"][1:] not in ([], ["int32"]):
                return None
            xs = [a.asnumpy().astype(np.float64) for a in arrs]
            ref = reference(c["op"], c["attrs"], xs)
            tol = 1e-9 if c["dtypes"][0] == "float64" else 2e-4
            if got.shape != ref.shape:
                return "output shape %s, expected %s" % (got.shape, ref.shape)
            if not np.allclose(got, ref, rtol=tol, atol=tol):
                return "values differ from numpy by %s" % np.abs(got - ref).max()
            return None
        if any(t not in ("float32", "float64") for t in c["dtypes"]):
            return None
        xs = [a.asnumpy().astype(np.float64) for a in arrs]
        fm = c["op"].startswith("FMConvolution")
        if fm and xs[0].size == 0:  # np_fmconv needs data: empty sums are 0
            want = want_shape(c["op"], c["attrs"], xs[0].shape)
            bias = 0.0 if len(xs) == 3 else xs[2].reshape(1, -1, 1, 1)
            ref = np.broadcast_to(bias, want)
        else:
            ref = reference(c["op"], c["attrs"], xs)
        tol = 1e-9 if all(t == "float64" for t in c["dtypes"]) else 2e-4
        if fm:  # np_fmconv returns (N, O, OH * OW)
            want = want_shape(c["op"], c["attrs"], xs[0].shape)
            if got.shape != want:
                return "output shape %s, expected %s" % (got.shape, want)
            ref = ref.reshape(want)
        if got.shape != ref.shape:
            return "output shape %s, expected %s" % (got.shape, ref.shape)
        # equal_nan: IBN normalises with sqrt(var + eps), nan for the negative moving_var drawn
        if not np.allclose(got, ref, rtol=tol, atol=tol, equal_nan=True):
            return "values differ from numpy by %s" % np.abs(got - ref).max()
        return None

    def run(c, rs):
        op, attrs = c["op"], c["attrs"]
        mx.util.set_np_shape(c["np_shape"])
        if c["mode"] == "nd":
            arrs = arrays(c, rs)
            y = getattr(mx.nd, op)(*arrs, **attrs)
            y = (y[0] if isinstance(y, list) else y).asnumpy()  # IBN: (out, mean, var)
            return check_values(c, y, arrs)
        syms = [mx.sym.var(n) for n in c["names"]]
        s = getattr(mx.sym, op)(*syms, **attrs)
        given = {}
        for n, shape in zip(c["names"], c["shapes"]):
            if shape is not None:
                unknown = -1 if c["np_shape"] else 0
                given[n] = tuple(unknown if d == -1 else d for d in shape)
        if c["mode"] == "infer_type":
            s.infer_type(**dict(zip(c["names"], c["dtypes"])))
            return None
        if c["mode"] in ("infer_shape", "infer_shape_partial"):
            _, outs, _ = getattr(s, c["mode"])(**given)
            data = c["shapes"][0] if c["shapes"] else None
            # fully known data (legacy mode reads () and 0 as unknown: MXNet then returns None)
            full = all(d is not None and -1 not in d and (c["np_shape"] or (d and 0 not in d))
                       for d in c["shapes"][:len(c["names"])])
            if c["mode"] == "infer_shape" and full and len(c["names"]) == len(s.list_arguments()):
                if outs is None or tuple(outs[0]) != want_shape(op, attrs, c["shapes"][0],
                                                                c["shapes"]):
                    return "inferred output %s" % (outs,)
            return None
        exe = s.simple_bind(mx.cpu(), grad_req="write" if c["train"] else "null",
                            type_dict=dict(zip(c["names"], c["dtypes"])), **given)
        arrs = []
        for n in c["names"]:
            a = exe.arg_dict[n] if n in exe.arg_dict else exe.aux_dict[n]  # IBN: aux states
            a[:] = rs.uniform(-1, 1, a.shape)
            arrs.append(a)
        exe.forward(is_train=c["train"])
        y = exe.outputs[0].asnumpy()
        if c["train"]:
            exe.backward([mx.nd.ones_like(o) for o in exe.outputs])
            for g in exe.grad_arrays:
                g.wait_to_read()
        c = dict(c, shapes=[a.shape for a in arrs], dtypes=[str(np.dtype(a.dtype)) for a in arrs])
        return check_values(c, y, arrs)

    rs = np.random.RandomState(0)
    for i, c in enumerate(json.load(sys.stdin)):
        print("CALL", i, flush=True)
        try:
            wrong = run(c, rs)
            res = {"status": "wrong" if wrong else "ok", "msg": wrong}
        except (MXNetError, ValueError) as e:
            res = {"status": "error", "type": type(e).__name__, "msg": str(e)}
        except Exception as e:  # counted as a failure of the test, with its type
            res = {"status": "error", "type": type(e).__name__, "msg": str(e)}
        print("RESULT", i, json.dumps(res), flush=True)
""")

# A message names something when it quotes a name: argument 'kernel', input 'data', node 'fb'.
NAMED = re.compile(r"'[A-Za-z_][\w.]*'")


def fuzz(op, n_calls, seed, batch=250):
    """Run ``n_calls`` generated calls of ``op``; returns the figures and the problems."""
    rng = random.Random("%s-%d" % (op, seed))
    calls = [make_call(rng, op) for _ in range(n_calls)]
    figures = {"calls": 0, "ok": 0, "named_errors": 0, "crashes": 0, "wrong_results": 0}
    problems = []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               MXNET_SUBGRAPH_VERBOSE="0")
    for start in range(0, len(calls), batch):
        chunk = calls[start:start + batch]
        proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(chunk),
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
        last = None
        for line in proc.stdout.splitlines():
            if line.startswith("CALL "):
                last = int(line.split()[1])
            elif line.startswith("RESULT "):
                _, i, res = line.split(" ", 2)
                res, call = json.loads(res), chunk[int(i)]
                figures["calls"] += 1
                if res["status"] == "ok":
                    figures["ok"] += 1
                elif res["status"] == "wrong":
                    figures["wrong_results"] += 1
                    problems.append(("wrong result: %s" % res["msg"], call))
                elif res["type"] in ("MXNetError", "ValueError") and NAMED.search(res["msg"]):
                    figures["named_errors"] += 1
                else:
                    problems.append(("%s: %s" % (res["type"], res["msg"][-600:]), call))
        if proc.returncode != 0:
            figures["crashes"] += 1
            problems.append(("crash (exit %d) in the call printed last:\n%s"
                             % (proc.returncode, proc.stderr[-2000:]),
                             chunk[last] if last is not None else None))
    return figures, problems


def report(op, figures, problems):
    print("\nfuzz %s: %s" % (op, json.dumps(figures)))
    return "\n\n".join("%s\n  call: %s" % (what, json.dumps(call)) for what, call in problems[:5])


OPERATORS = gluon_models.ops.info()["operators"]


def test_every_operator_has_a_generator():
    assert sorted(GENERATORS) == sorted(OPERATORS)


@pytest.mark.parametrize("op", OPERATORS)
def test_fuzz(op):
    figures, problems = fuzz(op, 250, seed=0)
    assert not problems, report(op, figures, problems)
    report(op, figures, problems)
    assert figures["calls"] == 250 and figures["ok"] > 25 and figures["named_errors"] > 25


@pytest.mark.slow
@pytest.mark.parametrize("op", OPERATORS)
def test_fuzz_long(op):
    figures, problems = fuzz(op, 3000, seed=1)
    assert not problems, report(op, figures, problems)
    report(op, figures, problems)
