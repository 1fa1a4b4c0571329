"""The tutorial's MLP on Iris, built with the Sequential API and with the Functional API.

Run: python examples/iris_mlp.py [--epochs N]
"""

import argparse

from jaxnet_lite import Input, Model, Sequential
from jaxnet_lite.callbacks import EarlyStopping
from jaxnet_lite.datasets import iris
from jaxnet_lite.layers import Dense
from jaxnet_lite.utils import to_categorical

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=200)
args = parser.parse_args()

(x_train, y_train), (x_test, y_test) = iris.load_data()
y_train = to_categorical(y_train, 3)
y_test = to_categorical(y_test, 3)

# The Sequential API.
model = Sequential()
model.add(Dense(32, input_shape=(4,), activation="relu"))
model.add(Dense(32, activation="relu"))
model.add(Dense(32, activation="relu"))
model.add(Dense(3, activation="softmax"))  # final layer.
model.summary()

# The Functional API: the same model.
input = Input((4,))
x = Dense(32, activation="relu")(input)
x = Dense(32, activation="relu")(x)
x = Dense(32, activation="relu")(x)
output = Dense(3, activation="softmax")(x)
functional = Model(inputs=[input], outputs=[output])
functional.summary()

for name, m in [("Sequential", model), ("Functional", functional)]:
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = m.fit(x_train, y_train, batch_size=16, epochs=args.epochs,
                    callbacks=[EarlyStopping(min_delta=0.0005, patience=10)], validation_split=0.1, verbose=0)
    loss, accuracy = m.evaluate(x_test, y_test, verbose=0)
    print(f"{name}: {len(history.epoch)} epochs, test loss {loss:.3f}, test accuracy {accuracy * 100:.2f}%")
