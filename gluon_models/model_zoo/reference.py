"""Published figures of registered models, each with its source, for the README model table
(``tools/model_table.py``) and the tests that hold our counts against them.

``REFERENCE[name]`` holds the keys that have a published value:

* ``label``: the model's name in its source;
* ``params_m``: parameters in millions as reported in the paper / README table;
* ``flops_g``: multiply-adds in 10^9 as reported (conv + fc, one image);
* ``top1_err``: reported top-1 test error, % (the CIFAR models': CIFAR-10 test error);
* ``exact_params``: exact learnable-parameter count of the authors' own network definition;
* ``source``: key of :data:`SOURCES`.
"""

__all__ = ["REFERENCE", "SOURCES", "reference"]

SOURCES = {
    "igc-imagenet": (
        "IGCNets (Zhang et al., ICCV 2017, arXiv 1707.02725), authors' README table "
        "(visualize/paper/ImagenetResults.png; spec igc.md 4.1): #Params, FLOPs and top-1 "
        "test error of the ResNet-18 family at 224 x 224. Exact counts: all learnable "
        "arguments (conv weights, BN gamma/beta, fc weight/bias) of the authors' published "
        "symbols ResNet18-w64/-w69, IGC-L4M32/-L16M16/-L100M2; the README #Params column "
        "does not follow from those symbols by any simple counting rule (spec igc.md 4.1)."),
    "igc-cifar": (
        "IGCNets authors' README command `plain_igc`, depth 38, L = 24, M = 2 on CIFAR-10: "
        "their utility.cal_params prints 0.3172M (log quoted in the authors' issue tracker; "
        "spec igc.md 2.1); 317,242 learnable parameters by the rule of plain_igc.py."),
    "fbn-cifar": (
        "FBN (Li et al., ICCV 2017, arXiv 1611.05709), paper / authors' README CIFAR table "
        "(spec fbn.md 6.1): CIFAR-10 test error. Exact counts: every argument of the authors' "
        "symbol files with 10 classes (spec fbn.md 6.2); the paper's parameter column (1.7M, "
        "2.2M, 10.2M, 10.7M, 2.4M) is that of the CIFAR-100 models."),
    "fbn-imagenet": (
        "FBN authors' README ImageNet table (spec fbn.md 6.1): single 224 centre-crop top-1 "
        "error. Exact counts: every argument of the authors' ResNet / Inception-BN symbols "
        "(spec fbn.md 6.2; ResNet-34/50-FBN with 50 factors, Inception-BN-FBN with the 20 of "
        "its file); for the ResNets this includes the 3 fixed gammas of `bn_data`, which are "
        "not learnable, hence 3 more than our count."),
    "mpncov-imagenet": (
        "Fast MPN-COV (Li, Xie, Wang, Gao, CVPR 2018, arXiv 1712.01034), authors' PyTorch "
        "README (https://github.com/jiangtaoxie/fast-MPN-COV): ImageNet-1k validation top-1 "
        "error, single 224 x 224 crop, of the released PyTorch models (the README's "
        "\"reproduced\" column; its \"paper\" column: 26.55 / 22.14 / 21.21, the VGG-D one "
        "being the ICCV MPN-COV-VGG-16 figure). Exact counts: learnable parameters of the "
        "repository's mpncovvgg16_bn / mpncovresnet50 / mpncovresnet101 with 1000 classes; "
        "their float32 state dicts (BN statistics included) are the README's model files "
        "of 650.4 / 217.3 / 289.9 MB (MiB)."),
    "gmsop-imagenet64": (
        "GM-SOP (Wang, Gao, Xie, Zuo, Li, NeurIPS 2018), authors' README table "
        "(https://github.com/ZilinGao/GM-SOP): parameters and top-1 validation error on "
        "downsampled ImageNet-1K (64 x 64) of the released models. Exact counts: learnable "
        "parameters of the authors' MatConvNet init files with 1000 classes (conv / fc "
        "weights, stem and classifier biases, BN gamma/beta, the gate matrices Wg, Wn). Two "
        "README figures do not follow from the code: ResNet-18 0.9M (the code gives 0.83M) "
        "and GM-SOP-16-8 + WRN-36-2 15.7M (the code gives 17.81M; the gap is almost exactly "
        "the 16 components' first 1 x 1 convolutions, 16 x 256 x 512)."),
    "ibn-imagenet": (
        "IBN-Net (Pan, Luo, Shi, Tang, ECCV 2018, arXiv 1807.09441), authors' README "
        "(https://github.com/XingangPan/IBN-Net): ImageNet validation top-1 error, single 224 "
        "centre crop, of their IBN-a models and their re-implementation of the baselines. Exact counts: learnable parameters of the "
        "authors' PyTorch definitions with 1000 classes."),
    "ibn-mx": (
        "IBN-Net's MXNet port (https://github.com/bruinxiong/IBN-Net.mxnet): no published "
        "results. Exact counts: every argument of the port's symbols with 1000 classes (10 "
        "for CIFAR), including the 3 fixed gammas of `bn_data`, which are not learnable, "
        "hence 3 more than our count."),
}

REFERENCE = {
    "resnet18_w64": dict(label="ResNet (C = 64)", params_m=11.151, flops_g=1.8,
                         top1_err=31.06, exact_params=11689512, source="igc-imagenet"),
    "resnet18_w69": dict(label="ResNet (C = 69)", params_m=11.333, flops_g=2.1,
                         top1_err=30.58, exact_params=13542457, source="igc-imagenet"),
    "igc_resnet18_l4m32": dict(label="IGC-L4M32+Ident.", params_m=11.205, flops_g=1.9,
                               top1_err=30.77, exact_params=12251240, source="igc-imagenet"),
    "igc_resnet18_l16m16": dict(label="IGC-L16M16+Ident.", params_m=11.329, flops_g=2.2,
                                top1_err=29.40, exact_params=13528296, source="igc-imagenet"),
    "igc_resnet18_l100m2": dict(label="IGC-L100M2+Ident.", params_m=8.61, flops_g=1.3,
                                top1_err=26.95, exact_params=8637900, source="igc-imagenet"),
    "igc_plain_cifar": dict(label="IGC-L24M2, depth 38", params_m=0.3172,
                            exact_params=317242, source="igc-cifar"),
    "resnet164_cifar": dict(label="ResNet-164", top1_err=5.30, exact_params=1715818,
                            source="fbn-cifar"),
    "resnet164_fbn_cifar": dict(label="ResNet-164-FBN", top1_err=5.00, exact_params=1767028,
                                source="fbn-cifar"),
    "resnet1001_cifar": dict(label="ResNet-1001", top1_err=4.04, exact_params=10402762,
                             source="fbn-cifar"),
    "resnet1001_fbn_cifar": dict(label="ResNet-1001-FBN", top1_err=4.09,
                                 exact_params=10453972, source="fbn-cifar"),
    "inception_bn_small_cifar": dict(label="Inception-BN", top1_err=5.82,
                                     exact_params=1652826, source="fbn-cifar"),
    "inception_bn_small_fbn_cifar": dict(label="Inception-BN-FBN", top1_err=5.58,
                                         exact_params=1720036, source="fbn-cifar"),
    "resnet34_preact": dict(label="ResNet-34", top1_err=27.7, exact_params=21800110,
                            source="fbn-imagenet"),
    "resnet34_fbn": dict(label="ResNet-34-FBN", top1_err=26.3, exact_params=47401110,
                         source="fbn-imagenet"),
    "resnet50_preact": dict(label="ResNet-50", top1_err=24.7, exact_params=25549486,
                            source="fbn-imagenet"),
    "resnet50_fbn": dict(label="ResNet-50-FBN", top1_err=24.0, exact_params=127950486,
                         source="fbn-imagenet"),
    "inception_bn": dict(label="Inception-BN", top1_err=27.5, exact_params=11295240,
                         source="fbn-imagenet"),
    "inception_bn_fbn": dict(label="Inception-BN-FBN", top1_err=26.4, exact_params=31776240,
                             source="fbn-imagenet"),
    "mpncov_vgg16_bn": dict(label="fast MPN-COV-VGG-D", top1_err=23.98,
                            exact_params=170479144, source="mpncov-imagenet"),
    "mpncov_resnet50": dict(label="fast MPN-COV-ResNet50", top1_err=21.71,
                            exact_params=56929832, source="mpncov-imagenet"),
    "mpncov_resnet101": dict(label="fast MPN-COV-ResNet101", top1_err=20.99,
                             exact_params=75921960, source="mpncov-imagenet"),
    "resnet18_imagenet64": dict(label="ResNet-18", params_m=0.9, top1_err=52.17,
                                exact_params=829192, source="gmsop-imagenet64"),
    "sr_sop_resnet18_imagenet64": dict(label="ResNet-18-SR-SOP", params_m=9.0, top1_err=40.56,
                                       exact_params=8957192, source="gmsop-imagenet64"),
    "gmgap16_8_resnet18_imagenet64": dict(label="GM-GAP-16-8 + ResNet-18", params_m=2.3,
                                          top1_err=42.25, exact_params=2333192,
                                          source="gmsop-imagenet64"),
    "gmgap16_8_wrn36_2_imagenet64": dict(label="GM-GAP-16-8 + WRN-36-2", params_m=8.7,
                                         top1_err=35.98, exact_params=8687496,
                                         source="gmsop-imagenet64"),
    "gmsop16_8_resnet18_imagenet64": dict(label="GM-SOP-16-8 + ResNet-18", params_m=10.3,
                                          top1_err=38.48, exact_params=10352776,
                                          source="gmsop-imagenet64"),
    "gmsop16_8_wrn36_2_imagenet64": dict(label="GM-SOP-16-8 + WRN-36-2", params_m=15.7,
                                         top1_err=32.71, exact_params=17809160,
                                         source="gmsop-imagenet64"),
    "densenet121_ibn_a": dict(label="DenseNet-121 IBN-a", top1_err=24.47,
                              exact_params=7978856, source="ibn-imagenet"),
    "densenet169_ibn_a": dict(label="DenseNet-169 IBN-a", top1_err=23.25,
                              source="ibn-imagenet"),
    "resnet18_ibn_a": dict(label="ResNet-18 IBN-a", top1_err=29.17, source="ibn-imagenet"),
    "resnet34_ibn_a": dict(label="ResNet-34 IBN-a", top1_err=25.78, source="ibn-imagenet"),
    "resnet50_ibn_a": dict(label="ResNet-50 IBN-a", top1_err=22.54, exact_params=25557032,
                           source="ibn-imagenet"),
    "resnet50_ibn_b": dict(label="ResNet-50 IBN-b", exact_params=25558568,
                           source="ibn-imagenet"),
    "resnet101_ibn_a": dict(label="ResNet-101 IBN-a", top1_err=21.39, source="ibn-imagenet"),
    "resnext50_ibn_a": dict(label="ResNeXt-50 IBN-a", exact_params=25028904,
                            source="ibn-imagenet"),
    "resnext101_ibn_a": dict(label="ResNeXt-101 (32x4d) IBN-a", top1_err=20.88,
                             source="ibn-imagenet"),
    "se_resnet50_ibn_a": dict(label="SE-ResNet-50 IBN-a", exact_params=28071976,
                              source="ibn-imagenet"),
    "se_resnet101_ibn_a": dict(label="SE-ResNet-101 IBN-a", top1_err=21.25,
                               source="ibn-imagenet"),
    "se_resnet101": dict(label="SE-ResNet-101 (authors' baseline)", top1_err=21.68,
                         source="ibn-imagenet"),
    "resnet50_ibn_a_mx": dict(label="resnet_ibn_a, depth 50", exact_params=25549486,
                              source="ibn-mx"),
    "resnext50_ibn_a_mx": dict(label="resnext_ibn_a, depth 50", exact_params=17401774,
                               source="ibn-mx"),
    "resnext50_ibn_b_mx": dict(label="resnext_ibn_b, depth 50", exact_params=25059118,
                               source="ibn-mx"),
    "resnext50_ibn_a_w_d_mx": dict(label="resnext_w_d_v2, depth 50", exact_params=39451182,
                                   source="ibn-mx"),
    "resnet164_ibn_a_mx_cifar": dict(label="resnet_ibn_a, cifar10, depth 164",
                                     exact_params=1703264, source="ibn-mx"),
}


def reference(name):
    """The published figures of registered model ``name`` (see module doc), or ``{}``."""
    return dict(REFERENCE.get(str(name).lower(), {}))
