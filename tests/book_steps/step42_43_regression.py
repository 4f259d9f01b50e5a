import numpy as np
from dezero import Variable
import dezero.functions as F

np.random.seed(0)
x = np.random.rand(100, 1)
y = 5 + 2 * x + np.random.rand(100, 1)
W = Variable(np.zeros((1, 1)))
b = Variable(np.zeros(1))


def predict(x):
    return F.matmul(x, W) + b


lr = 0.1
for i in range(100):
    y_pred = predict(x)
    loss = F.mean_squared_error(y, y_pred)
    W.cleargrad()
    b.cleargrad()
    loss.backward()
    W.data -= lr * W.grad.data
    b.data -= lr * b.grad.data
    if i % 20 == 0:
        print(W, b, loss)

np.random.seed(0)
x = np.random.rand(100, 1)
y = np.sin(2 * np.pi * x) + np.random.rand(100, 1)
I, H, O = 1, 10, 1
W1 = Variable(0.01 * np.random.randn(I, H))
b1 = Variable(np.zeros(H))
W2 = Variable(0.01 * np.random.randn(H, O))
b2 = Variable(np.zeros(O))


def predict2(x):
    y = F.linear(x, W1, b1)
    y = F.sigmoid(y)
    return F.linear(y, W2, b2)


for i in range(2000):
    y_pred = predict2(x)
    loss = F.mean_squared_error(y, y_pred)
    for p in (W1, b1, W2, b2):
        p.cleargrad()
    loss.backward()
    for p in (W1, b1, W2, b2):
        p.data -= 0.2 * p.grad.data
    if i % 500 == 0:
        print(loss)
