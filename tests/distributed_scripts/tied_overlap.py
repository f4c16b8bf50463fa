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
model(rg.randn(3, 4)).sum().backward()
print("not detected", flush=True)
