"""overlap=True with a weight also read outside its module's forward must fail loudly."""
import retrograd as rg
from retrograd import nn
from retrograd.distributed import DistributedDataParallel, init


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4)

    def forward(self, x):   # the second use reads embed.weight directly: invisible to the hooks
        return nn.functional.linear(self.embed(x), self.embed.weight)


init()
rg.manual_seed(0)
model = DistributedDataParallel(Tied(), overlap=True)
try:
    model(rg.randn(3, 4)).sum().backward()
except RuntimeError as e:
    # printed and exited here rather than left to mpi4py's abort, which may cut off the output
    print(f"detected: {e}", flush=True)
    raise SystemExit(3)
print("not detected", flush=True)
