import math
import numpy as np
from dezero import Variable, Function
from dezero.utils import plot_dot_graph


class Sin(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, gy):
        x = self.inputs[0].data
        return gy * np.cos(x)


def my_sin(x, threshold=0.0001):
    y = 0
    for i in range(100000):
        c = (-1) ** i / math.factorial(2 * i + 1)
        t = c * x ** (2 * i + 1)
        y = y + t
        if abs(t.data) < threshold:
            break
    return y


x = Variable(np.array(np.pi / 4))
y = Sin()(x)
y.backward()
print(y.data, x.grad)
x = Variable(np.array(np.pi / 4))
y = my_sin(x)
y.backward()
print(y.data, x.grad)
x.name, y.name = 'x', 'y'
plot_dot_graph(y, verbose=False, to_file='my_sin.png')
print('plotted')
