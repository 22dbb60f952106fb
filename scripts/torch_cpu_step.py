"""PyTorch's CPU training-step rate on the three configurations of `resnet-wgpu bench --steps`.

python3 scripts/torch_cpu_step.py [--steps N]
torchvision models, 10 classes, random data, SGD momentum 0.9, weight decay 5e-4, float32, the
machine's CPU threads. The 224-pixel row upsamples 32×32 input inside the step, as the seed
network does (torchvision's ResNet-50 stands in for the seed variant: the same convolutions,
without its conv biases). Prints the median step time and images/s after two warm-up steps.
"""
import argparse, time
import torch, torch.nn as nn, torch.nn.functional as F, torchvision

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=5)
a = p.parse_args()

def resnet50_224():
    return torchvision.models.resnet50(weights=None, num_classes=10), 224

def resnet50_32():
    return torchvision.models.resnet50(weights=None, num_classes=10), 32

def resnet18_cifar():
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m, 32

configs = [
    ("seed ResNet-50 (torchvision stand-in), 224 px (upsampled), batch 8", resnet50_224, 8),
    ("torchvision ResNet-50, ImageNet stem, 32 px, batch 32", resnet50_32, 32),
    ("ResNet-18, CIFAR stem, 32 px, batch 64", resnet18_cifar, 64),
]
print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
for title, build, batch in configs:
    torch.manual_seed(0)
    model, size = build()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        inputs = F.interpolate(x, size=size, mode="nearest") if size != 32 else x
        F.cross_entropy(model(inputs), y).backward()
        opt.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2]
    print(f"{title}: {med:.3f} s/step, {batch / med:.2f} images/s")
