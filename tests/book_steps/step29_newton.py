import numpy as np
import dezero
if not dezero.is_simple_core:
    from dezero.core_simple import Variable
    from dezero.core_simple import setup_variable
    setup_variable()


def f(x):
    return x ** 4 - 2 * x ** 2


def gx2(x):
    return 12 * x ** 2 - 4


x = Variable(np.array(2.0))
for i in range(10):
    print(i, x)
    y = f(x)
    x.cleargrad()
    y.backward()
    x.data -= x.grad / gx2(x.data)
