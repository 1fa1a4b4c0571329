"""The layer catalogue, with Keras names, arguments and defaults."""

from jaxnet_lite.core import Layer, LayerError, Masked, Variables
from jaxnet_lite.layers.attention import MultiHeadAttention
from jaxnet_lite.layers.combinators import (
    Container,
    FanOut,
    Parallel,
    Residual,
    Serial,
    fan_out,
    parallel,
    residual,
    serial,
)
from jaxnet_lite.layers.conv import Conv1D, Conv1DTranspose, Conv2D, Conv2DTranspose, Conv3D, Conv3DTranspose
from jaxnet_lite.layers.core import Activation, Dense, Flatten, Identity, Lambda, Reshape
from jaxnet_lite.layers.embedding import Embedding
from jaxnet_lite.layers.masking import Masking
from jaxnet_lite.layers.merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from jaxnet_lite.layers.normalization import BatchNormalization, LayerNormalization, RMSNormalization
from jaxnet_lite.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from jaxnet_lite.layers.position import PositionEmbedding, TokenAndPositionEmbedding
from jaxnet_lite.layers.recurrent import GRU, LSTM, SimpleRNN
from jaxnet_lite.layers.regularization import Dropout
from jaxnet_lite.layers.wrappers import Bidirectional, TimeDistributed

# Keras aliases.
Convolution2D = Conv2D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

FanInSum = Add
FanInConcat = Concatenate

_SUBMODULES = {"attention", "combinators", "conv", "core", "embedding", "masking", "merge", "normalization", "pooling", "position", "recurrent", "regularization", "wrappers"}
__all__ = sorted(name for name in dir() if not name.startswith("_") and name not in _SUBMODULES)
