import os
import tempfile

import numpy as np
import dezero.functions as F
import dezero.layers as L
from dezero import Model, optimizers, DataLoader, SeqDataLoader
from dezero.models import MLP
from dezero.datasets import Spiral, SinCurve

# float64 layers: DeZero's float32 default turns into float64 under NumPy 2
# (a documented difference), so the printed numbers are comparable only so.
np.random.seed(0)
x = np.random.rand(100, 1)
y = np.sin(2 * np.pi * x) + np.random.rand(100, 1)


class TwoLayerNet(Model):
    def __init__(self, hidden_size, out_size):
        self.note = 'a plain attribute before super().__init__()'
        super().__init__()
        self.l1 = L.Linear(hidden_size, dtype=np.float64)
        self.l2 = L.Linear(out_size, dtype=np.float64)

    def forward(self, x):
        return self.l2(F.sigmoid(self.l1(x)))


model = TwoLayerNet(10, 1)
optimizer = optimizers.MomentumSGD(0.2).setup(model)
for i in range(1000):
    loss = F.mean_squared_error(model(x), y)
    model.cleargrads()
    loss.backward()
    optimizer.update()
    if i % 250 == 0:
        print(loss)

np.random.seed(0)
train = Spiral()
model = MLP((10, 3))
for layer in (model.l0, model.l1):
    layer.dtype = np.float64
    layer.W.data = None                      # re-drawn lazily in float64
    layer.b.data = layer.b.data.astype(np.float64)
optimizer = optimizers.SGD(1.0).setup(model)
loader = DataLoader(train, 30)
for epoch in range(5):
    total = 0
    for xb, tb in loader:
        xb = xb.astype(np.float64)
        loss = F.softmax_cross_entropy(model(xb), tb)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        total += float(loss.data) * len(tb)
    print(epoch, round(total / len(train), 10))

path = os.path.join(tempfile.mkdtemp(), 'w.npz')
model.save_weights(path)
other = MLP((10, 3))
other(np.zeros((1, 2)))
other.load_weights(path)
print(np.array_equal(other.l0.W.data, model.l0.W.data))

bn = L.BatchNorm()
print(bn(np.arange(6.0).reshape(3, 2)))

np.random.seed(0)
seq = SinCurve(train=True)
rnn = L.RNN(10)
fc = L.Linear(1)
loss, count = 0, 0
for xb, tb in SeqDataLoader(seq, batch_size=1):
    h = rnn(xb.astype(np.float32))
    loss += F.mean_squared_error(fc(h), tb)
    count += 1
    if count == 30:
        break
lstm = L.LSTM(5)
print(count, lstm(np.ones((1, 1))).shape, 'done')
