import numpy as np
from dezero import Variable, test_mode
import dezero.functions as F
from dezero.datasets import Spiral, get_spiral
from dezero import DataLoader

x = Variable(np.array([[0.2, -0.4], [0.3, 0.5], [1.3, -3.2], [2.1, 0.3]]))
t = np.array([2, 0, 1, 0])
W = Variable(np.random.RandomState(0).randn(2, 3))
y = F.matmul(x, W)
p = F.softmax(y)
loss = F.softmax_cross_entropy(y, t)
loss.backward()
print(p, loss, W.grad, F.accuracy(y, t))

train = Spiral(train=True)
print(len(train), train[0], get_spiral(train=False)[0][:2])
loader = DataLoader(train, batch_size=30, shuffle=False)
sums = [float(xb.sum()) + float(tb.sum()) for xb, tb in loader]
print(len(sums), sums[:3])

np.random.seed(0)
x = np.ones(5)
print(F.dropout(x))
with test_mode():
    print(F.dropout(x))

rs = np.random.RandomState(2)
x = Variable(rs.randn(1, 3, 7, 7))
W = Variable(rs.randn(8, 3, 5, 5))
y = F.conv2d(x, W, b=None, stride=1, pad=1)
p = F.pooling(y, 2, 2)
a = F.average_pooling(y, 2, 2)
(p.sum() + a.sum()).backward()
print(y.shape, p.shape, x.grad.sum(), W.grad.sum())
col = F.im2col(x, 5, 1, 1)
print(col.shape, col.sum())
