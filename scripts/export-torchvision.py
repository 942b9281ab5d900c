#!/usr/bin/env python3
"""Exports torchvision architectures to ONNX the way users do (torch.onnx.export,
constant folding on), with seeded random weights: no download, so pretrained
weights are not needed. BatchNorm statistics are randomised too, so the folded
convs carry non-trivial scales and biases.

    python3 scripts/export-torchvision.py OUTDIR [NAME ...]

Needs python3-torch, python3-torchvision and python3-onnx (Debian packages).
Writes OUTDIR/<name>.onnx for each name; one that exists is left as it is.
"""
import os
import sys

import onnx
import torch
import torchvision
from onnx import TensorProto, helper, numpy_helper


class FirstOutput(torch.nn.Module):
    """Segmentation nets return a dict; the export takes its 'out' tensor."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def randomise_batchnorm(net, seed):
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.2 * torch.randn(n, generator=g)
            m.running_mean.data = 0.2 * torch.randn(n, generator=g)
            m.running_var.data = 0.5 + torch.rand(n, generator=g)


def fp16_weights_behind_casts(model):
    """Stores every float initializer as float16 and casts it back to float
    where the graph reads it: the half-precision weight storage that
    converters produce around float32 compute."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        name = init.name
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), name + "_fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [name + "_fp16"], [name], name=name + "_cast", to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def fp16_throughout(model):
    """Stores every float initializer as float16 and runs the whole graph in
    float16 between a Cast of the input and a Cast of the output (PyTorch
    cannot trace a half-precision conv on the CPU, so the export is made in
    float32 and converted, as converters do)."""
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype("float16"), init.name))
    inp, out = graph.input[0].name, graph.output[0].name
    for node in graph.node:
        node.input[:] = [inp + "_fp16" if x == inp else x for x in node.input]
        node.output[:] = [out + "_fp16" if x == out else x for x in node.output]
    nodes = (
        [helper.make_node("Cast", [inp], [inp + "_fp16"], name="input_cast", to=TensorProto.FLOAT16)]
        + list(graph.node)
        + [helper.make_node("Cast", [out + "_fp16"], [out], name="output_cast", to=TensorProto.FLOAT)]
    )
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # float32 types of the intermediates no longer hold
    return model


MODELS = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "shufflenet_v2_x1_0": lambda: torchvision.models.shufflenet_v2_x1_0(weights=None),
    "squeezenet1_1": lambda: torchvision.models.squeezenet1_1(weights=None),
    "googlenet": lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True),
    "deeplabv3_mobilenet_v3_large": lambda: FirstOutput(
        torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False)
    ),
    # float16 weights behind Cast nodes (see fp16_weights_behind_casts)
    "resnet18_fp16w": lambda: torchvision.models.resnet18(weights=None),
    # float16 weights and compute (see fp16_throughout); resnet18's ops all have float16 kernels in onnxruntime
    "resnet18_fp16": lambda: torchvision.models.resnet18(weights=None),
}
# Fully convolutional: height and width are exported as dynamic axes.
DYNAMIC_HW = {"deeplabv3_mobilenet_v3_large"}


def export(name, out_dir):
    path = os.path.join(out_dir, name + ".onnx")
    if os.path.exists(path):
        return path
    torch.manual_seed(0)
    net = MODELS[name]()
    randomise_batchnorm(net, 1)
    net.eval()
    size = 256 if name in DYNAMIC_HW else 224
    x = torch.randn(1, 3, size, size)
    axes = {"input": {0: "N"}, "output": {0: "N"}}
    if name in DYNAMIC_HW:
        axes = {"input": {0: "N", 2: "H", 3: "W"}, "output": {0: "N", 2: "H", 3: "W"}}
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(
            net, x, tmp, opset_version=13, input_names=["input"], output_names=["output"],
            dynamic_axes=axes, do_constant_folding=True,
        )
    if name.endswith("_fp16w"):
        onnx.save(fp16_weights_behind_casts(onnx.load(tmp)), tmp)
    elif name.endswith("_fp16"):
        onnx.save(fp16_throughout(onnx.load(tmp)), tmp)
    onnx.checker.check_model(tmp)
    os.replace(tmp, path)
    return path


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit("unknown model(s): %s; known: %s" % (", ".join(unknown), ", ".join(MODELS)))
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        print(export(name, out_dir), flush=True)


if __name__ == "__main__":
    main()
