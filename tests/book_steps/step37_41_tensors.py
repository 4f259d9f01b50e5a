import numpy as np
from dezero import Variable
import dezero.functions as F

x = Variable(np.array([[1, 2, 3], [4, 5, 6]]))
c = Variable(np.array([[10, 20, 30], [40, 50, 60]]))
y = F.sin(x) + c
y.backward(retain_grad=True)
print(y, x.grad, c.grad)

x = Variable(np.random.RandomState(0).randn(1, 2, 3))
y = x.reshape((2, 3))
z = x.reshape(2, 3).T
w = F.transpose(x.reshape(3, 2))
(y.sum() + z.sum() + w.sum()).backward()
print(y.shape, z.shape, w.shape, x.grad)

x = Variable(np.array([[1.0, 2, 3], [4, 5, 6]]))
print(F.sum(x, axis=0), F.sum(x, axis=1, keepdims=True), x.sum())
y = F.sum(x, axis=0)
y.backward()
print(x.grad)

x0 = Variable(np.array([1.0, 2, 3]))
x1 = Variable(np.array([10.0]))
y = x0 + x1
y.backward()
print(y, x0.grad, x1.grad)
x = Variable(np.array([[1.0, 2, 3], [4, 5, 6]]))
y = F.broadcast_to(Variable(np.array([1.0, 2, 3])), (2, 3)) * x
z = F.sum_to(y, (1, 3))
z.backward()
print(z, x.grad)

rs = np.random.RandomState(1)
x = Variable(rs.randn(2, 3))
W = Variable(rs.randn(3, 4))
y = F.matmul(x, W)
y.backward()
print(x.grad.shape, W.grad.shape)
print(x.grad, W.grad)
