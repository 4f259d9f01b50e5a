import numpy as np
from dezero import Variable
import dezero.functions as F
from dezero.utils import plot_dot_graph


def f(x):
    return x ** 4 - 2 * x ** 2


x = Variable(np.array(2.0))
for i in range(10):
    print(i, x)
    y = f(x)
    x.cleargrad()
    y.backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    gx.backward()
    gx2 = x.grad
    x.data -= gx.data / gx2.data

x = Variable(np.linspace(-7, 7, 5))
y = F.sin(x)
y.backward(create_graph=True)
logs = [y.data]
for _ in range(3):
    logs.append(x.grad.data)
    gx = x.grad
    x.cleargrad()
    gx.backward(create_graph=True)
for row in logs:
    print(row)

x = Variable(np.array(1.0))
y = F.tanh(x)
x.name, y.name = 'x', 'y'
y.backward(create_graph=True)
for _ in range(3):
    gx = x.grad
    x.cleargrad()
    gx.backward(create_graph=True)
gx = x.grad
gx.name = 'gx4'
print(gx)
plot_dot_graph(gx, verbose=False, to_file='tanh.png')

x = Variable(np.array(2.0))
y = x ** 2
y.backward(create_graph=True)
gx = x.grad
x.cleargrad()
z = gx ** 3 + y
z.backward()
print(x.grad)
