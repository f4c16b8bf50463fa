"""XOR, the hello-world of backpropagation: a 2-2-1 network learns what no single neuron can.

Run:  python examples/xor.py
"""
import retrograd as rg
from retrograd import nn

rg.manual_seed(0)

# The four XOR points and their targets.
X = rg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = rg.tensor([[0.0], [1.0], [1.0], [0.0]])

# 2 inputs -> 2 sigmoid hidden units -> 1 sigmoid output.
model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 1), nn.Sigmoid())
lr = 0.5

for epoch in range(1, 10_001):
    a = model(X)                              # forward pass: the network's answers
    E = 0.5 * ((Y - a) ** 2).sum()            # error E = 1/2 * sum (y - a)^2
    model.zero_grad()
    E.backward()                              # backward pass: dE/dw for every weight (chain rule)
    with rg.no_grad():
        for w in model.parameters():
            w -= lr * w.grad                  # gradient descent: w <- w - lr * dE/dw
    if epoch % 1000 == 0:
        print(f"epoch {epoch:5d}  error {E.item():.5f}")
    if E.item() < 0.01:
        print(f"stopped at epoch {epoch}, error {E.item():.5f}")
        break

print("predictions:", [round(p, 3) for p in model(X).detach().numpy().ravel().tolist()])
