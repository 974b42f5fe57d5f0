"""Smoke tests of the benchmarks (quick mode, into a tmp directory) and of their helpers."""
import json

import mxnet as mx
import numpy as np
import pytest

from benchmarks import bench_fb, bench_isqrtcov, bench_reorder, run
from benchmarks.common import verdict, verdict_line


def test_registry_lists_the_benchmarks():
    assert {"reorder", "fb", "isqrtcov", "gmsop"} <= set(run.available())


def test_unknown_benchmark_is_an_error_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run.main(["no_such_bench", "--out-dir", str(tmp_path)])
    assert "no_such_bench" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_verdict_and_its_line():
    cases = [("a B=2", 1.4), ("b B=4", 0.9), ("c B=8", 0.6)]
    v = verdict(cases, 1.0, "stock / native >= 1.0")
    assert v == {"met": False, "what": "stock / native >= 1.0", "target": 1.0, "cases": 3,
                 "worst": 0.6, "worst_case": "c B=8", "missed": ["b B=4 (0.90)", "c B=8 (0.60)"]}
    assert verdict_line(v) == ("stock / native >= 1.0: **missed** in 2 of 3 cases: "
                               "b B=4 (0.90), c B=8 (0.60).")
    met = verdict(cases[:1], 1.0, "speed")
    assert met["met"] is True and met["missed"] == []
    assert verdict_line(met, "%.2fx".__mod__) == "speed: met in 1/1 cases; worst 1.40x at a B=2."
    # lower is better (memory ratios): the worst is the largest, a tie meets the target
    low = verdict(cases, 0.9, "memory <= 0.9", higher_is_better=False)
    assert (low["worst"], low["worst_case"], low["missed"]) == (1.4, "a B=2", ["a B=2 (1.40)"])
    # no case in the range a target applies to: neither met nor missed
    none = verdict([], 0.5, "bandwidth at >= 4 MiB")
    assert none["met"] is None and none["cases"] == 0
    assert verdict_line(none) == "bandwidth at >= 4 MiB: no case in range."


def test_reorder_quick_writes_json_and_markdown(tmp_path):
    written = run.main(["reorder", "--quick", "--out-dir", str(tmp_path)])
    json_path, md_path = written["reorder"]
    assert json_path == str(tmp_path / "reorder.json")
    assert md_path == str(tmp_path / "reorder.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reorder.json", "reorder.md"]

    with open(json_path) as fh:
        res = json.load(fh)
    assert res["name"] == "reorder" and res["quick"] is True and res["elapsed_s"] > 0
    for key in ("cpu", "cores", "mxnet", "omp_num_threads", "date"):
        assert res["machine"][key] not in (None, "")
    assert {"speedup_fwd_bwd", "speedup_fwd", "bw_fraction_fwd_bwd",
            "bw_fraction_kernel"} <= set(res["verdicts"])
    assert len(res["cases"]) == len(bench_reorder.QUICK_CASES)
    modes = {"fwd_bwd": {"native", "native_op", "stock", "copy"},
             "fwd": {"native", "stock", "copy"},
             "fwd_out": {"native_op", "copy", "numpy"}}
    for case in res["cases"]:
        assert case["outputs_agree"] is True
        assert case["bytes"] == 4 * case["shape"][0] * case["shape"][1] * case["shape"][2] \
            * case["shape"][3]
        for mode, variants in modes.items():
            assert set(case[mode]) == variants
            for timing in case[mode].values():
                assert 0 < timing["min_ms"] <= timing["median_ms"] <= timing["max_ms"]
                assert len(timing["times_ms"]) == bench_reorder.QUICK["repeats"]
                assert timing["number"] >= 1 and timing["faults_per_call"] >= 0
        for key in ("speedup_fwd_bwd", "speedup_fwd", "bw_fraction_fwd_bwd",
                    "bw_fraction_fwd", "bw_fraction_kernel"):
            assert case[key] > 0

    with open(md_path) as fh:
        md = fh.read()
    assert md.startswith("# Reorder")
    assert "| MiB | shape | B | native ms |" in md
    assert res["machine"]["cpu"] in md


@pytest.mark.parametrize("shape, branch_factor", [((2, 6, 3, 3), 2), ((2, 6, 3, 3), 3),
                                                  ((3, 12, 1, 5), 4), ((2, 8, 2, 2), 8)])
def test_variants_agree(shape, branch_factor):
    assert bench_reorder.check_agreement(shape, branch_factor)


def test_disagreeing_variant_stops_the_benchmark():
    impls = {"native": bench_reorder.IMPLS["native"],
             "wrong": lambda x, branch_factor: x * 1}  # the identity, not the permutation
    with pytest.raises(AssertionError, match="'wrong'.*branch_factor 2"):
        bench_reorder.check_agreement((2, 6, 3, 3), 2, impls=impls)


def test_reference_matches_the_spec_examples():
    x = np.arange(6).reshape(1, 6)
    assert bench_reorder.reference(x, 2).ravel().tolist() == [0, 3, 1, 4, 2, 5]
    assert bench_reorder.reference(x, 3).ravel().tolist() == [0, 2, 4, 1, 3, 5]


def test_im2rec_benchmark_is_registered_and_its_folder_is_real_jpegs(tmp_path):
    import cv2
    from benchmarks import bench_im2rec
    assert "im2rec" in run.available()
    bench_im2rec.make_folder(str(tmp_path), images=6, classes=3)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg"))
    assert files == ["class0/00000.jpg", "class0/00003.jpg", "class1/00001.jpg",
                     "class1/00004.jpg", "class2/00002.jpg", "class2/00005.jpg"]
    img = cv2.imread(str(tmp_path / files[0]))
    assert img.shape == (240, 320, 3) and 5e3 < (tmp_path / files[0]).stat().st_size < 6e4


def test_fb_quick_writes_json_and_markdown(tmp_path):
    # about 10 s: the CIFAR head at batch 32, 2 timed steps, one memory child per variant
    written = run.main(["fb", "--quick", "--out-dir", str(tmp_path)])
    assert written["fb"] == (str(tmp_path / "fb.json"), str(tmp_path / "fb.md"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fb.json", "fb.md"]
    with open(tmp_path / "fb.json") as fh:
        res = json.load(fh)
    assert res["name"] == "fb" and res["quick"] is True and res["elapsed_s"] > 0
    assert res["machine"]["operators"]["blas"] and res["machine"]["operators"]["blas_core"]
    assert set(res["verdicts"]) == {"speedup", "memory_ratio", "sgemm_fraction"}
    assert [(r["case"], r["variant"]) for r in res["rows"]] == [
        (c, v) for c in bench_fb.QUICK["cases"] for v in bench_fb.VARIANTS]
    for r in res["rows"]:
        assert 0 < r["min_s"] <= r["median_s"]
        assert len(r["times_s"]) == bench_fb.QUICK["repeats"]
        assert r["peak_growth_mb"] > 0 and r["gflops"] > 0 and r["sgemm_fraction"] > 0
    stock = [r for r in res["rows"] if r["variant"] == "stock"][0]
    assert stock["speedup_vs_stock"] == 1 and stock["memory_vs_stock"] == 1
    ref = res["reference_rates"][0]
    assert ref["sgemm"] > 0 and ref["mx_dot"] > 0 and ref["onednn_conv"] > 0
    with open(tmp_path / "fb.md") as fh:
        md = fh.read()
    assert md.startswith("# FB layer")
    assert "| case | variant | median s (min) | speed vs stock |" in md
    assert "Reference rates" in md and "mode: quick" in md


def test_isqrtcov_quick_writes_json_and_markdown(tmp_path):
    # a few seconds: B = 8, C = 256, 14 x 14, 2 timed steps, one memory child per variant
    written = run.main(["isqrtcov", "--quick", "--out-dir", str(tmp_path)])
    assert written["isqrtcov"] == (str(tmp_path / "isqrtcov.json"),
                                   str(tmp_path / "isqrtcov.md"))
    with open(tmp_path / "isqrtcov.json") as fh:
        res = json.load(fh)
    assert set(res["verdicts"]) == {"speedup", "sgemm_fraction", "memory_ratio"}
    assert [(r["case"], r["variant"]) for r in res["rows"]] == [
        (c, v) for c in bench_isqrtcov.QUICK["cases"] for v in bench_isqrtcov.VARIANTS]
    for r in res["rows"]:
        assert 0 < r["min_s"] <= r["median_s"]
        assert r["peak_growth_mb"] > 0 and r["useful_gflops"] > 0 and r["sgemm_gflops"] > 0
    native, stock = res["rows"]
    assert stock["speedup_vs_stock"] == 1 and stock["memory_vs_stock"] == 1
    assert native["executed_gflops"] < native["useful_gflops"]
    with open(tmp_path / "isqrtcov.md") as fh:
        assert fh.read().startswith("# iSQRT-COV")


def test_isqrtcov_flop_counts():
    # N = 5, C = 256, 14 x 14, B = 32: 50 products of C^3 (12 + 38) plus 2 C^2 M, times 2 B
    useful, executed = bench_isqrtcov.flops("b32_c256_14x14_n5")
    cov = 2 * 256 ** 2 * 196
    assert useful == 64 * (50 * 256 ** 3 + cov)
    assert executed == 64 * (30.5 * 256 ** 3 + cov)


def test_isqrtcov_disagreeing_variants_stop_the_benchmark(monkeypatch):
    monkeypatch.setitem(bench_isqrtcov.CASES, "tiny", dict(batch=2, channels=4, size=3,
                                                           iter_num=5))
    bench_isqrtcov.check_agreement("tiny")
    real = bench_isqrtcov.build

    def broken(case, variant, seed=0):
        return real(case, variant, seed=seed + (variant == "native"))
    monkeypatch.setattr(bench_isqrtcov, "build", broken)
    with pytest.raises(AssertionError, match="differ"):
        bench_isqrtcov.check_agreement("tiny")


def test_gmsop_quick_writes_json_and_markdown(tmp_path):
    """The GM-SOP benchmark's smoke run (B = 4): both tables, every variant timed."""
    written = run.main(["gmsop", "--quick", "--out-dir", str(tmp_path)])
    assert written["gmsop"] == (str(tmp_path / "gmsop.json"), str(tmp_path / "gmsop.md"))
    with open(tmp_path / "gmsop.json") as fh:
        res = json.load(fh)
    assert res["quick"] is True and res["settings"]["batch"] == 4
    assert len(res["networks"]) == 3 and len(res["heads"]) == 3
    assert all(t["median_ms"] > 0 for t in list(res["networks"].values()) +
               list(res["heads"].values()))
    assert "GM-SOP head (dense) / GAP head" in (tmp_path / "gmsop.md").read_text()


def test_ibn_quick_writes_results(tmp_path):
    from benchmarks import bench_ibn
    written = run.main(["ibn", "--quick", "--out-dir", str(tmp_path)])
    with open(written["ibn"][0]) as fh:
        res = json.load(fh)
    assert res["name"] == "ibn" and len(res["cases"]) == len(bench_ibn.QUICK_CASES)
    assert {"speedup_vs_stock", "speedup_vs_mxnet"} <= set(res["verdicts"])
    for case in res["cases"]:
        assert case["outputs_agree"] is True
        assert set(case["timings"]) == {"native", "stock", "mxnet"}
        assert case["speedup_vs_stock"] > 0 and case["speedup_vs_mxnet"] > 0
    with open(written["ibn"][1]) as fh:
        assert fh.read().startswith("# IBN layer")


_DNNL_LINES = """\
dnnl_verbose,info,oneDNN v2.4.4 (commit 5818c40f07bdb6307f9bc64e929836fe036da644)
dnnl_verbose,info,prim_template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time
dnnl_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:abcd:f0 dst_f32::blocked:aBcd16b:f0,,,2x16x8x8,0.25
dnnl_verbose,exec,cpu,reorder,jit:blk,undef,src_f32::blocked:aBcd16b:f0 dst_f32::blocked:abcd:f0,,,2x16x8x8,1.5
dnnl_verbose,exec,cpu,reorder,jit:blk,undef,src_f32::blocked:aBcd16b:f0 dst_f32::blocked:abcd:f0,,,2x16x8x8,0.5
dnnl_verbose,exec,cpu,convolution,jit:avx512_common,forward_training,src_f32::blocked:aBcd16b:f0 wei_f32::blocked:aBCde16c16b:f0 bia_undef::undef::f0 dst_f32::blocked:aBcd16b:f0,,alg:convolution_direct,g4mb2_ic64oc64_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,3
dnnl_verbose,exec,cpu,convolution,jit:avx512_common,forward_training,src_f32::blocked:aBcd16b:f0 wei_f32::blocked:ABcd16b16a:f0 bia_undef::undef::f0 dst_f32::blocked:aBcd16b:f0,,alg:convolution_direct,mb2_ic64oc64_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,2
dnnl_verbose,exec,cpu,convolution,x64:gemm:jit,backward_weights,src_f32::blocked:abcd:f0 wei_f32::blocked:abcde:f0 bia_undef::undef::f0 dst_f32::blocked:abcd:f0,,alg:convolution_direct,g100mb2_ic200oc200_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,4
dnnl_verbose,exec,cpu,batch_normalization,ncsp_bnorm:any,forward_training,data_f32::blocked:abcd:f0 diff_undef::undef::f0,,flags:CH,mb2ic64ih8iw8,0.75
dnnl_verbose,exec,cpu,eltwise,jit:avx512_common,backward_data,data_f32::blocked:aBcd16b:f0 diff_f32::blocked:aBcd16b:f0,,alg:eltwise_relu alpha:0 beta:0,2x64x8x8,0.125
dnnl_verbose,exec,cpu,sum,simple:any,undef,src_f32::blocked:abcd:f0 src_f32::blocked:abcd:f0 dst_f32::blocked:abcd:f0,,,2x64x8x8,0.5
dnnl_verbose,exec,cpu,convolution,jit:avx512_common,forward_training,truncated line
some other output, 12
"""


def test_dnnl_verbose_parser_aggregates_by_kind():
    from benchmarks import bench_igc_nets as b
    got = b.parse_dnnl_verbose(_DNNL_LINES.splitlines())
    assert {k: (v["ms"], v["calls"]) for k, v in got["ops"].items()} == {
        "reorder abcd->aBcd16b": (0.25, 1),
        "reorder aBcd16b->abcd": (2.0, 2),
        "convolution forward_training grouped jit:avx512_common": (3.0, 1),
        "convolution forward_training dense jit:avx512_common": (2.0, 1),
        "convolution backward_weights grouped x64:gemm:jit": (4.0, 1),
        "batch_normalization forward_training": (0.75, 1),
        "eltwise backward_data": (0.125, 1),
        "sum": (0.5, 1)}
    # ordered by time, largest first
    assert list(got["ops"])[:2] == ["convolution backward_weights grouped x64:gemm:jit",
                                    "convolution forward_training grouped jit:avx512_common"]
    assert got["total_ms"] == 12.625 and got["calls"] == 9
    assert {k: (v["ms"], v["calls"]) for k, v in got["by_primitive"].items()} == {
        "convolution": (9.0, 3), "reorder": (2.25, 3), "batch_normalization": (0.75, 1),
        "sum": (0.5, 1), "eltwise": (0.125, 1)}
    reorders = got["by_primitive"]["reorder"]
    assert reorders["impl_ms"] == {"jit:uni": 0.25, "jit:blk": 2.0}
    assert reorders["slowest"] == {"ms": 1.5, "problem": "2x16x8x8"}
    b_ = dict(got, wall_ms=20.0, outside_ms=20.0 - got["total_ms"])
    rows = b.breakdown_rows(b_, top=3)
    assert rows[0] == ["convolution backward_weights grouped x64:gemm:jit", "4.0", 1, "20.0%",
                       "x64:gemm:jit 4.0",
                       "4.0 ms g100mb2_ic200oc200_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1"]
    assert rows[2][0] == "convolution forward_training dense jit:avx512_common"  # tie: by key
    assert rows[3][:4] == ["(5 other oneDNN kinds)", "3.6", 6, "18.1%"]
    assert len({len(r) for r in rows}) == 1 and len(rows[0]) == len(b.BREAKDOWN_COLUMNS)
    assert [r[1] for r in rows[-3:]] == ["12.6", "7.4", "20.0"]
    assert b._summary(got) == (7.0, 2.0, 2.25)


def test_dnnl_verbose_sections_follow_the_markers():
    from benchmarks import bench_igc_nets as b
    lines = _DNNL_LINES.splitlines()
    text = "\n".join([lines[2], '@@igc_nets begin ["net [x=1]", "train"]', lines[3], lines[4],
                      "@@igc_nets end", lines[5], '@@igc_nets begin ["net [x=1]", "infer"]',
                      lines[6], "@@igc_nets end", '{"net": 1}'])
    assert b.sections(text) == {("net [x=1]", "train"): lines[3:5],
                                ("net [x=1]", "infer"): [lines[6]]}


def test_igc_nets_variants_are_labelled_and_checked(monkeypatch):
    from benchmarks import bench_igc_nets as b
    nets = b.network_list({"igc_resnet18_l16m16": [{}, {"depth_opt": 3}]})
    labels = [n[0] for n in nets]
    assert labels == ["resnet18_w64", "igc_resnet18_l4m32", "igc_resnet18_l16m16",
                      'igc_resnet18_l16m16 [depth_opt=3]', "igc_resnet18_l100m2",
                      "resnet_cifar", "igc_resnet_cifar"]
    assert nets[3][2] == {"impl": "native", "depth_opt": 3} and nets[3][4] == "igc_resnet18_l16m16"
    with pytest.raises(ValueError, match="no_such_net"):
        b.network_list({"no_such_net": [{}]})
    with pytest.raises(ValueError, match="resnet18_w64"):
        b.network_list({"resnet18_w64": ["impl=stock"]})
    monkeypatch.setenv(b.VARIANTS_ENV, '{"resnet_cifar": [{"width": 24}]}')
    assert b._env_variants() == {"resnet_cifar": [{"width": 24}]}
    monkeypatch.setenv(b.VARIANTS_ENV, "[1, 2")
    with pytest.raises(ValueError, match=b.VARIANTS_ENV):
        b._env_variants()


def test_igc_nets_quick_writes_results(tmp_path):
    # about 15 s: six small networks timed, one verbose child breaking down the ImageNet four
    from benchmarks import bench_igc_nets as b
    written = run.main(["igc_nets", "--quick", "--out-dir", str(tmp_path)])
    with open(written["igc_nets"][0]) as fh:
        res = json.load(fh)
    assert res["name"] == "igc_nets" and res["quick"] is True
    assert res["groups"]["imagenet"]["batch"] == 2 and res["groups"]["cifar"]["batch"] == 4
    for g in res["groups"].values():
        assert g["ratios"][g["baseline"]] == {"train": 1.0, "infer": 1.0}
        assert all(t["median_ms"] > 0 for t in list(g["train"].values())
                   + list(g["infer"].values()))
    assert set(res["verdicts"]) == {"%s %s" % (n, m) for n in b.TARGETS
                                    for m in ("train", "infer")}
    imagenet = [n[0] for n in b.network_list() if n[3] == "imagenet"]  # with the variants
    assert sorted(res["breakdowns"]) == sorted(imagenet)
    assert "igc_resnet18_l16m16 [fuse_secondary=false, merge_groups=false]" in imagenet
    for label in imagenet:
        for mode in ("train", "infer"):
            bd = res["breakdowns"][label][mode]
            assert bd["calls"] > 0 and 0 < bd["total_ms"] <= bd["wall_ms"]
            assert bd["faults"] >= 0 and bd["peak_rss_mb"] > 0
            # ResNet-18: 17+ oneDNN convs; IGC-L100M2 keeps only its stem and projections
            # there (its primaries run as the native GroupConv)
            assert bd["by_primitive"]["convolution"]["calls"] >= (
                5 if label == "igc_resnet18_l100m2" else 17)
        grouped = sum(e["calls"] for k, e in res["breakdowns"][label]["train"]["ops"].items()
                      if " grouped " in k)
        assert (grouped > 0) == label.startswith("igc_")
    with open(written["igc_nets"][1]) as fh:
        md = fh.read()
    assert md.startswith("# IGC networks") and "breakdown: igc_resnet18_l16m16, training" in md


def test_bnrelu_quick_writes_results(tmp_path):
    from benchmarks import bench_bnrelu
    written = run.main(["bnrelu", "--quick", "--out-dir", str(tmp_path)])
    with open(written["bnrelu"][0]) as fh:
        res = json.load(fh)
    assert res["name"] == "bnrelu" and len(res["cases"]) == 2 * len(bench_bnrelu.QUICK_CASES)
    assert {c["residual"] for c in res["cases"]} == {False, True}
    for case in res["cases"]:
        assert case["outputs_agree"] is True
        assert set(case["train"]) == set(case["infer"]) == {"native", "stock"}
        assert case["train_speedup"] > 0 and case["infer_speedup"] > 0
    with open(written["bnrelu"][1]) as fh:
        assert fh.read().startswith("# BatchNorm + ReLU")


def test_groupconv_quick_writes_results(tmp_path):
    from benchmarks import bench_groupconv
    written = run.main(["groupconv", "--quick", "--out-dir", str(tmp_path)])
    with open(written["groupconv"][0]) as fh:
        res = json.load(fh)
    assert res["name"] == "groupconv" and len(res["cases"]) == len(bench_groupconv.QUICK_CASES)
    for case in res["cases"]:
        assert case["outputs_agree"] is True
        for key in ("alone", "then_reorder"):
            assert set(case[key]["train"]) == set(case[key]["infer"]) == set(bench_groupconv.KINDS)
            assert case[key]["train_speedup"] > 0 and case[key]["infer_speedup"] > 0
        assert max(max(e.values()) for e in case["relative_error_vs_float64"].values()) < 1e-4
    # the target counts the stride-1 cases only
    assert res["verdicts"]["train_speedup"]["cases"] == sum(
        c[5] == 1 for c in bench_groupconv.QUICK_CASES)
    with open(written["groupconv"][1]) as fh:
        assert fh.read().startswith("# Grouped 3x3 convolutions")


def test_groupconv_benchmark_stops_on_a_wrong_result(monkeypatch):
    """A variant that computes something else is named, not timed."""
    from benchmarks import bench_groupconv
    case = bench_groupconv.QUICK_CASES[0]
    weight = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (8, 2, 3, 3)))
    layers = bench_groupconv._layers(case, False, weight)
    layers["merged"].conv.weight.set_data(weight * 1.01)
    with pytest.raises(AssertionError, match="output of the merged layer differs"):
        bench_groupconv.check_agreement(case, layers, weight)
