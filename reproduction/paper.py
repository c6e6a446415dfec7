"""Numbers published in the paper, as data (for tables that show them beside a run's)."""

from __future__ import annotations

#: Table 3: pointing game on VOC07, best single layer (b.s.) and best weighted combination (b.w.),
#: keyed by method → (arch, subset) → (b.s., b.w.); archs "resnet50" and "vgg16", subsets "all"/"difficult".
TABLE3 = {
    "contrastive_excitation_backprop": {("resnet50", "all"): (90.7, 88.6), ("vgg16", "all"): (82.1, 78.2),
                                        ("resnet50", "difficult"): (82.2, 82.2), ("vgg16", "difficult"): (67.0, 65.2)},
    "excitation_backprop": {("resnet50", "all"): (84.5, 83.1), ("vgg16", "all"): (77.5, 75.7),
                            ("resnet50", "difficult"): (71.5, 71.3), ("vgg16", "difficult"): (57.8, 56.1)},
    "grad_cam": {("resnet50", "all"): (90.3, 90.5), ("vgg16", "all"): (86.6, 80.6),
                 ("resnet50", "difficult"): (82.3, 82.6), ("vgg16", "difficult"): (74.0, 67.8)},
    "gradient": {("resnet50", "all"): (83.9, 83.3), ("vgg16", "all"): (86.6, 82.7),
                 ("resnet50", "difficult"): (70.3, 69.4), ("vgg16", "difficult"): (66.4, 67.4)},
    "gradient_sum": {("resnet50", "all"): (80.0, 77.4), ("vgg16", "all"): (76.8, 77.2),
                     ("resnet50", "difficult"): (62.9, 59.5), ("vgg16", "difficult"): (57.9, 59.4)},
    "guided_backprop": {("resnet50", "all"): (82.3, 81.0), ("vgg16", "all"): (75.8, 74.4),
                        ("resnet50", "difficult"): (67.9, 63.4), ("vgg16", "difficult"): (53.0, 51.6)},
    "linear_approx": {("resnet50", "all"): (90.2, 91.2), ("vgg16", "all"): (86.4, 86.9),
                      ("resnet50", "difficult"): (81.9, 83.8), ("vgg16", "difficult"): (74.5, 77.4)},
    "normgrad": {("resnet50", "all"): (84.6, 83.5), ("vgg16", "all"): (81.9, 81.8),
                 ("resnet50", "difficult"): (72.2, 70.2), ("vgg16", "difficult"): (64.8, 64.6)},
    "selective_normgrad": {("resnet50", "all"): (87.4, 88.7), ("vgg16", "all"): (86.0, 86.8),
                           ("resnet50", "difficult"): (77.0, 79.1), ("vgg16", "difficult"): (72.6, 74.5)},
}

#: Table 4: correlation (%) of NormGrad with and without the virtual identity, mean ± std.
TABLE4 = {
    ("resnet50", "layer1.0.conv1"): (99.48, 0.55), ("resnet50", "layer2.0.conv1"): (99.32, 0.35),
    ("resnet50", "layer3.0.conv1"): (99.16, 0.42), ("resnet50", "layer4.0.conv1"): (98.35, 1.05),
    ("vgg16", "features.2"): (97.77, 1.34), ("vgg16", "features.7"): (99.15, 0.42),
    ("vgg16", "features.14"): (98.99, 0.57), ("vgg16", "features.21"): (97.79, 1.42),
    ("vgg16", "features.28"): (94.33, 3.09),
}
#: § 4.1: mean absolute pointing-game difference with vs without the identity trick (%).
IDENTITY_POINTING_DIFFERENCE = (0.53, 0.62)

#: Table 5: best individual layer on VOC07 → (arch, subset) → layer ("input" = the image).
TABLE5 = {
    "contrastive_excitation_backprop": {("resnet50", "all"): "layer3", ("resnet50", "difficult"): "layer4",
                                        ("vgg16", "all"): "features.29", ("vgg16", "difficult"): "features.29"},
    "excitation_backprop": {("resnet50", "all"): "layer4", ("resnet50", "difficult"): "layer4",
                            ("vgg16", "all"): "features.29", ("vgg16", "difficult"): "features.29"},
    "grad_cam": {("resnet50", "all"): "layer4", ("resnet50", "difficult"): "layer4",
                 ("vgg16", "all"): "features.29", ("vgg16", "difficult"): "features.29"},
    "gradient": {("resnet50", "all"): "layer2", ("resnet50", "difficult"): "layer2",
                 ("vgg16", "all"): "features.29", ("vgg16", "difficult"): "features.22"},
    "gradient_sum": {("resnet50", "all"): "layer2", ("resnet50", "difficult"): "layer2",
                     ("vgg16", "all"): "features.8", ("vgg16", "difficult"): "features.8"},
    "guided_backprop": {("resnet50", "all"): "layer3", ("resnet50", "difficult"): "layer3",
                        ("vgg16", "all"): "input", ("vgg16", "difficult"): "input"},
    "linear_approx": {("resnet50", "all"): "layer4", ("resnet50", "difficult"): "layer4",
                      ("vgg16", "all"): "features.29", ("vgg16", "difficult"): "features.29"},
    "normgrad": {("resnet50", "all"): "layer3", ("resnet50", "difficult"): "layer3",
                 ("vgg16", "all"): "features.22", ("vgg16", "difficult"): "features.22"},
    "selective_normgrad": {("resnet50", "all"): "layer4", ("resnet50", "difficult"): "layer4",
                           ("vgg16", "all"): "features.29", ("vgg16", "difficult"): "features.29"},
}

#: Table 6: gain (points) of each weighting over the best single layer, VOC07 pointing game:
#: (method, "sum" | "product", weight kind) → (ResNet50 all, ResNet50 difficult, VGG16 all, VGG16 difficult).
TABLE6 = {
    ("linear_approx", "sum", "probe_accuracy"): (0.57, 1.47, 0.22, 2.09),
    ("linear_approx", "sum", "feature_spread"): (0.81, 1.66, -3.01, -7.18),
    ("linear_approx", "sum", "linear"): (0.68, 0.74, 0.36, 2.22),
    ("linear_approx", "sum", "uniform"): (0.58, 1.29, -0.61, -0.20),
    ("linear_approx", "product", "probe_accuracy"): (0.87, 1.84, 0.42, 2.91),
    ("linear_approx", "product", "feature_spread"): (1.01, 1.78, -2.92, -6.80),
    ("linear_approx", "product", "linear"): (0.52, 0.72, 0.49, 2.87),
    ("linear_approx", "product", "uniform"): (0.32, 0.83, -0.25, 0.52),
    ("selective_normgrad", "sum", "probe_accuracy"): (1.08, 1.37, 0.48, 0.85),
    ("selective_normgrad", "sum", "feature_spread"): (0.94, 1.40, -3.66, -6.43),
    ("selective_normgrad", "sum", "linear"): (0.94, 1.67, 0.62, 0.85),
    ("selective_normgrad", "sum", "uniform"): (0.25, 0.54, -0.93, -2.55),
    ("selective_normgrad", "product", "probe_accuracy"): (1.26, 1.65, 0.83, 1.88),
    ("selective_normgrad", "product", "feature_spread"): (1.12, 2.09, -3.13, -6.18),
    ("selective_normgrad", "product", "linear"): (0.63, 0.95, 0.72, 0.62),
    ("selective_normgrad", "product", "uniform"): (0.89, 1.79, -0.27, -1.76),
}

#: Fig. 3 caption: the centre-point baseline on VOC07 (ResNet50 setting), %.
CENTER_BASELINE_VOC07 = {"all": 69.6, "difficult": 42.4}

#: Which paper architecture each of our models stands in for.
COUNTERPART = {"mini_resnet": "resnet50", "mini_vgg": "vgg16", "resnet50_voc": "resnet50", "vgg16_voc": "vgg16",
               "resnet50_coco": "resnet50", "vgg16_coco": "vgg16", "resnet50": "resnet50", "vgg16": "vgg16"}

SHORT = {"contrastive_excitation_backprop": "CEB", "excitation_backprop": "EB", "grad_cam": "GC", "gradient": "Gd",
         "gradient_sum": "Gds", "guided_backprop": "Gui", "linear_approx": "LA", "normgrad": "NG",
         "selective_normgrad": "sNG", "deconvnet": "Dec", "normgrad_conv": "NGc",
         "guided_backprop_sum": "Guis"}


#: The stages of the authors' sanity check (their ``examples/sanity_check.py``, ``short`` lists), from
#: the top of the network down; a stage re-initialises every parameter-holding module registered at
#: or after its module (``""``: all of them), as their ``partially_randomize_model`` does.
AUTHORS_STAGES: dict[str, tuple[str, ...]] = {
    "vgg16": ("classifier.6", "classifier.4", "classifier.2", "features.29", "features.22", "features.15",
              "features.8", "features.3", ""),
    "resnet50": ("fc", "layer4", "layer3", "layer2", "layer1", "maxpool"),
}
