"""DeZero's ``dezero.models``: Model (a Layer that can plot its graph) and
ready-made networks: Sequential, MLP, VGG16, ResNet-50/101/152 and
SqueezeNet. Pretrained weights are fetched into the download cache with
``utils.get_file`` (which names the URL and the cache path when it cannot
download).

Where this differs from DeZero 0.0.13, and why:

- ResNet: DeZero passed Chainer's argument order (in_channels, out_channels,
  ksize, stride, pad) to its own Conv2d (out_channels, kernel_size, stride,
  pad, nobias), so ``ResNet()`` raised TypeError before building anything.
  Here the layers are the Chainer/MSRA ResNet that the comments and the
  pretrained files describe: conv1 is a 7x7, stride 2, pad 3 convolution to
  64 channels with a bias, the bottleneck convolutions have none, and every
  convolution is given its in_channels (so its weights exist, and are
  drawn, at construction).
- SqueezeNet: DeZero's is an empty stub (``__init__`` and ``forward`` are
  ``pass``). This one is a working SqueezeNet 1.1 (conv 3x3/2 to 64
  channels, eight Fire modules, conv 1x1 to 1000 classes, global average
  pooling), with max pooling rounding down rather than up. No pretrained
  weights for it are published for DeZero, so ``pretrained=True`` raises.
- MLP with no layer sizes, and ResNet with an unsupported depth, fail when
  built rather than on the first call.
"""
import os

import numpy as np

import cydezero.functions as F
import cydezero.layers as L
from cydezero import cuda, utils
from cydezero._core import Function, get_item
from cydezero.layers import Layer


# =============================================================================
# Model / Sequential / MLP
# =============================================================================
class Model(Layer):
    """A Layer meant to be a whole network; ``plot`` draws its graph."""

    def plot(self, *inputs, to_file='model.png'):
        """Run forward on ``inputs`` and render the graph behind the output
        with Graphviz into ``to_file`` (see ``utils.plot_dot_graph``)."""
        y = self.forward(*inputs)
        return utils.plot_dot_graph(y, verbose=True, to_file=to_file)


class Sequential(Model):
    """Apply ``layers`` (Layers or any callables) one after the other; the
    Layers are registered as l0, l1, ..."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = []
        for i, layer in enumerate(layers):
            setattr(self, 'l' + str(i), layer)
            self.layers.append(layer)

    def forward(self, x):
        """``x`` through each of the layers in turn."""
        for layer in self.layers:
            x = layer(x)
        return x


class MLP(Model):
    """Fully connected layers l0, l1, ... with ``fc_output_sizes`` outputs,
    ``activation`` after each but the last."""

    def __init__(self, fc_output_sizes, activation=F.sigmoid):
        super().__init__()
        self.activation = activation
        self.layers = []
        for i, out_size in enumerate(fc_output_sizes):
            layer = L.Linear(out_size)
            setattr(self, 'l' + str(i), layer)
            self.layers.append(layer)
        if not self.layers:
            raise ValueError('MLP: fc_output_sizes is empty; give at least one '
                             'layer size')

    def forward(self, x):
        """The output of the last layer (no activation after it)."""
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


# =============================================================================
# VGG
# =============================================================================
class VGG16(Model):
    """VGG-16 (13 3x3 convolutions in five blocks, each block followed by
    2x2 max pooling, then three fully connected layers with dropout) for
    224x224 RGB input preprocessed by ``VGG16.preprocess``. Its layers are
    created lazily: the weights are drawn on the first call."""

    WEIGHTS_PATH = ('https://github.com/koki0702/dezero-models/releases/'
                    'download/v0.1/vgg16.npz')

    def __init__(self, pretrained=False):
        super().__init__()
        self.conv1_1 = L.Conv2d(64, kernel_size=3, stride=1, pad=1)
        self.conv1_2 = L.Conv2d(64, kernel_size=3, stride=1, pad=1)
        self.conv2_1 = L.Conv2d(128, kernel_size=3, stride=1, pad=1)
        self.conv2_2 = L.Conv2d(128, kernel_size=3, stride=1, pad=1)
        self.conv3_1 = L.Conv2d(256, kernel_size=3, stride=1, pad=1)
        self.conv3_2 = L.Conv2d(256, kernel_size=3, stride=1, pad=1)
        self.conv3_3 = L.Conv2d(256, kernel_size=3, stride=1, pad=1)
        self.conv4_1 = L.Conv2d(512, kernel_size=3, stride=1, pad=1)
        self.conv4_2 = L.Conv2d(512, kernel_size=3, stride=1, pad=1)
        self.conv4_3 = L.Conv2d(512, kernel_size=3, stride=1, pad=1)
        self.conv5_1 = L.Conv2d(512, kernel_size=3, stride=1, pad=1)
        self.conv5_2 = L.Conv2d(512, kernel_size=3, stride=1, pad=1)
        self.conv5_3 = L.Conv2d(512, kernel_size=3, stride=1, pad=1)
        self.fc6 = L.Linear(4096)
        self.fc7 = L.Linear(4096)
        self.fc8 = L.Linear(1000)

        if pretrained:
            self.load_weights(utils.get_file(VGG16.WEIGHTS_PATH))

    def forward(self, x):
        """Class scores (N, 1000) for a batch ``x`` of shape (N, 3, 224, 224)."""
        blocks = ((self.conv1_1, self.conv1_2),
                  (self.conv2_1, self.conv2_2),
                  (self.conv3_1, self.conv3_2, self.conv3_3),
                  (self.conv4_1, self.conv4_2, self.conv4_3),
                  (self.conv5_1, self.conv5_2, self.conv5_3))
        for block in blocks:
            for conv in block:
                x = F.relu(conv(x))
            x = F.pooling(x, 2, 2)
        x = F.reshape(x, (x.shape[0], -1))
        x = F.dropout(F.relu(self.fc6(x)))
        x = F.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)

    @staticmethod
    def preprocess(image, size=(224, 224), dtype=np.float32):
        """A PIL image (or the path of an image file, opened with Pillow) as
        the (3, H, W) BGR array, mean-subtracted, that the network takes."""
        if isinstance(image, (str, bytes, os.PathLike)):
            try:
                from PIL import Image
            except ImportError as e:
                raise ImportError('VGG16.preprocess needs Pillow to open an '
                                  'image file (pip install Pillow)') from e
            image = Image.open(image)
        if not hasattr(image, 'convert'):
            raise TypeError('VGG16.preprocess takes a PIL image or a path, got '
                            f'{type(image).__name__}')
        image = image.convert('RGB')
        if size:
            image = image.resize(size)
        image = np.asarray(image, dtype=dtype)
        image = image[:, :, ::-1] - np.array([103.939, 116.779, 123.68], dtype=dtype)
        return image.transpose((2, 0, 1))


# =============================================================================
# ResNet
# =============================================================================
def _global_average_pooling_2d(x):
    N, C, H, W = x.shape
    h = F.average_pooling(x, (H, W), stride=1)
    return F.reshape(h, (N, C))


class ResNet(Model):
    """ResNet-50, -101 or -152 (the MSRA bottleneck design): conv 7x7/2,
    batch norm, max pooling 3x3/2, four stages of bottleneck blocks,
    global average pooling, a 1000-way linear layer."""

    WEIGHTS_PATH = ('https://github.com/koki0702/dezero-models/releases/'
                    'download/v0.1/resnet{}.npz')

    def __init__(self, n_layers=152, pretrained=False):
        super().__init__()

        if n_layers == 50:
            block = [3, 4, 6, 3]
        elif n_layers == 101:
            block = [3, 4, 23, 3]
        elif n_layers == 152:
            block = [3, 8, 36, 3]
        else:
            raise ValueError('The n_layers argument should be either 50, 101,'
                             f' or 152, but {n_layers} was given.')

        self.conv1 = L.Conv2d(64, 7, 2, 3, in_channels=3)
        self.bn1 = L.BatchNorm()
        self.res2 = BuildingBlock(block[0], 64, 64, 256, 1)
        self.res3 = BuildingBlock(block[1], 256, 128, 512, 2)
        self.res4 = BuildingBlock(block[2], 512, 256, 1024, 2)
        self.res5 = BuildingBlock(block[3], 1024, 512, 2048, 2)
        self.fc6 = L.Linear(1000)

        if pretrained:
            self.load_weights(utils.get_file(ResNet.WEIGHTS_PATH.format(n_layers)))

    def forward(self, x):
        """Class scores (N, 1000) for a batch ``x`` of shape (N, 3, H, W)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.pooling(x, kernel_size=3, stride=2)
        x = self.res2(x)
        x = self.res3(x)
        x = self.res4(x)
        x = self.res5(x)
        x = _global_average_pooling_2d(x)
        return self.fc6(x)


class ResNet152(ResNet):
    """``ResNet(n_layers=152)``: ResNet-152, with the pretrained weights on request."""

    def __init__(self, pretrained=False):
        super().__init__(152, pretrained)


class ResNet101(ResNet):
    """``ResNet(n_layers=101)``: ResNet-101, with the pretrained weights on request."""

    def __init__(self, pretrained=False):
        super().__init__(101, pretrained)


class ResNet50(ResNet):
    """``ResNet(n_layers=50)``: ResNet-50, with the pretrained weights on request."""

    def __init__(self, pretrained=False):
        super().__init__(50, pretrained)


class BuildingBlock(Layer):
    """One ResNet stage: a BottleneckA (``a``, which may change the
    resolution and the channel count) then ``n_layers - 1`` BottleneckBs
    (``b1``, ``b2``, ...)."""

    def __init__(self, n_layers=None, in_channels=None, mid_channels=None,
                 out_channels=None, stride=None, downsample_fb=None):
        super().__init__()
        self.a = BottleneckA(in_channels, mid_channels, out_channels, stride,
                             downsample_fb)
        self._forward = ['a']
        for i in range(n_layers - 1):
            name = f'b{i + 1}'
            setattr(self, name, BottleneckB(out_channels, mid_channels))
            self._forward.append(name)

    def forward(self, x):
        """``x`` through ``a``, ``b1``, ``b2``, ... in turn."""
        for name in self._forward:
            x = getattr(self, name)(x)
        return x


class BottleneckA(Layer):
    """A bottleneck block that reduces the resolution of the feature map:
    relu(bn(conv1x1(relu(bn(conv3x3(relu(bn(conv1x1(x)))))))) + bn(conv1x1(x))),
    the shortcut projected to ``out_channels`` with ``stride``.

    With ``downsample_fb`` False the stride sits on the first 1x1
    convolution (the original MSRA ResNet); True puts it on the 3x3
    convolution (Facebook's ResNet).
    """

    def __init__(self, in_channels, mid_channels, out_channels,
                 stride=2, downsample_fb=False):
        super().__init__()
        stride_1x1, stride_3x3 = (1, stride) if downsample_fb else (stride, 1)
        self.conv1 = L.Conv2d(mid_channels, 1, stride_1x1, 0, nobias=True,
                              in_channels=in_channels)
        self.bn1 = L.BatchNorm()
        self.conv2 = L.Conv2d(mid_channels, 3, stride_3x3, 1, nobias=True,
                              in_channels=mid_channels)
        self.bn2 = L.BatchNorm()
        self.conv3 = L.Conv2d(out_channels, 1, 1, 0, nobias=True,
                              in_channels=mid_channels)
        self.bn3 = L.BatchNorm()
        self.conv4 = L.Conv2d(out_channels, 1, stride, 0, nobias=True,
                              in_channels=in_channels)
        self.bn4 = L.BatchNorm()

    def forward(self, x):
        """The block's output; see the class docstring."""
        h1 = F.relu(self.bn1(self.conv1(x)))
        h1 = F.relu(self.bn2(self.conv2(h1)))
        h1 = self.bn3(self.conv3(h1))
        h2 = self.bn4(self.conv4(x))
        return F.relu(h1 + h2)


class BottleneckB(Layer):
    """A bottleneck block that keeps the resolution and the channel count:
    relu(x + bn(conv1x1(relu(bn(conv3x3(relu(bn(conv1x1(x))))))))."""

    def __init__(self, in_channels, mid_channels):
        super().__init__()
        self.conv1 = L.Conv2d(mid_channels, 1, 1, 0, nobias=True,
                              in_channels=in_channels)
        self.bn1 = L.BatchNorm()
        self.conv2 = L.Conv2d(mid_channels, 3, 1, 1, nobias=True,
                              in_channels=mid_channels)
        self.bn2 = L.BatchNorm()
        self.conv3 = L.Conv2d(in_channels, 1, 1, 0, nobias=True,
                              in_channels=mid_channels)
        self.bn3 = L.BatchNorm()

    def forward(self, x):
        """The block's output; see the class docstring."""
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + x)


# =============================================================================
# SqueezeNet
# =============================================================================
class _ConcatChannels(Function):
    """y = concatenation of the inputs along axis 1;  gx_i = gy's slice of
    x_i's channels."""

    def forward(self, *xs):
        return cuda.get_array_module(xs[0]).concatenate(xs, axis=1)

    def backward(self, gy):
        gxs, start = [], 0
        for x in self.inputs:
            stop = start + x.shape[1]
            gxs.append(get_item(gy, (slice(None), slice(start, stop))))
            start = stop
        return tuple(gxs)


class Fire(Layer):
    """SqueezeNet's Fire module: a 1x1 "squeeze" convolution to
    ``squeeze`` channels, then 1x1 and 3x3 "expand" convolutions whose
    outputs are concatenated (expand1x1 + expand3x3 channels), all with
    ReLU."""

    def __init__(self, in_channels, squeeze, expand1x1, expand3x3):
        super().__init__()
        self.squeeze = L.Conv2d(squeeze, 1, in_channels=in_channels)
        self.expand1x1 = L.Conv2d(expand1x1, 1, in_channels=squeeze)
        self.expand3x3 = L.Conv2d(expand3x3, 3, pad=1, in_channels=squeeze)

    def forward(self, x):
        """The concatenated expand outputs, (N, expand1x1 + expand3x3, H, W)."""
        h = F.relu(self.squeeze(x))
        return _ConcatChannels()(F.relu(self.expand1x1(h)),
                                 F.relu(self.expand3x3(h)))


class SqueezeNet(Model):
    """SqueezeNet 1.1 for RGB images of at least 32x32 (224x224 in the
    paper), 1000 classes. DeZero 0.0.13 ships only an empty stub."""

    def __init__(self, pretrained=False):
        super().__init__()
        self.conv1 = L.Conv2d(64, 3, stride=2, in_channels=3)
        self.fire2 = Fire(64, 16, 64, 64)
        self.fire3 = Fire(128, 16, 64, 64)
        self.fire4 = Fire(128, 32, 128, 128)
        self.fire5 = Fire(256, 32, 128, 128)
        self.fire6 = Fire(256, 48, 192, 192)
        self.fire7 = Fire(384, 48, 192, 192)
        self.fire8 = Fire(384, 64, 256, 256)
        self.fire9 = Fire(512, 64, 256, 256)
        self.conv10 = L.Conv2d(1000, 1, in_channels=512)
        if pretrained:
            raise NotImplementedError(
                'SqueezeNet: no pretrained weights are published for DeZero; '
                'train it, or load weights of your own with load_weights()')

    def forward(self, x):
        """Class scores (N, 1000) for a batch ``x`` of shape (N, 3, H, W)."""
        x = F.relu(self.conv1(x))
        x = F.pooling(x, 3, 2)
        x = self.fire3(self.fire2(x))
        x = F.pooling(x, 3, 2)
        x = self.fire5(self.fire4(x))
        x = F.pooling(x, 3, 2)
        x = self.fire9(self.fire8(self.fire7(self.fire6(x))))
        x = F.dropout(x, 0.5)
        x = F.relu(self.conv10(x))
        return _global_average_pooling_2d(x)
