"""The tutorial's MNIST CNN, written exactly as the Keras tutorial writes it (only the imports differ).

Run: JAXNET_LITE_DATA_DIR=/path/to/data python examples/mnist_cnn.py [--epochs N]
"""

import argparse

import numpy as np

import jaxnet_lite as keras
from jaxnet_lite import Sequential
from jaxnet_lite.callbacks import EarlyStopping
from jaxnet_lite.layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from jaxnet_lite.utils import to_categorical

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--data-dir", default=None, help="directory holding mnist/ (default: $JAXNET_LITE_DATA_DIR)")
parser.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke tests)")
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data(args.data_dir)
x_train, y_train = x_train[: args.limit], y_train[: args.limit]
x_train = x_train.astype("float32") / 255  # normalize the pixels' values to 0-1 range
x_test = x_test.astype("float32") / 255
x_train = np.expand_dims(x_train, -1)  # The input shape for Conv2D is (H,W,1)
x_test = np.expand_dims(x_test, -1)
print(x_train.shape)
y_train = to_categorical(y_train, 10)  # One hot encoding with 10 classes (10 digits 0-9)
y_test = to_categorical(y_test, 10)

model = Sequential()
model.add(Conv2D(32, kernel_size=(3, 3), input_shape=(28, 28, 1), activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, kernel_size=(3, 3), activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dropout(0.5))
model.add(Dense(10, activation="softmax"))
model.summary()
e_s = EarlyStopping(min_delta=0.0005, patience=2)  # Early stopping call back

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, callbacks=[e_s], validation_split=0.1)

performance = model.evaluate(x_test, y_test)
print("The test loss is %.2f" % performance[0])
print("The test accuracy is %.2f" % (performance[1] * 100) + "%")
