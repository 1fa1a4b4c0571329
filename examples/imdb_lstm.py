"""The tutorial's promised sequel: an LSTM reads movie reviews, written as Keras code (only the imports differ).

Keras' own IMDB recipe on the review subset shipped with the package (5,000 training and 1,000 test
reviews, a 500-word vocabulary): pad to 200 words, embed with padding masked, read with an LSTM
(or a bidirectional one), and classify with one sigmoid unit.

Run: python examples/imdb_lstm.py [--bidirectional] [--epochs N] [--seed S]
"""

import argparse

import jaxnet_lite as keras
from jaxnet_lite import Sequential
from jaxnet_lite.callbacks import EarlyStopping
from jaxnet_lite.layers import LSTM, Bidirectional, Dense, Embedding
from jaxnet_lite.utils import pad_sequences

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--bidirectional", action="store_true", help="Bidirectional(LSTM(32)) instead of LSTM(32)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--limit", type=int, default=None, help="use only the first N training reviews (smoke tests)")
args = parser.parse_args()

max_features, maxlen = 500, 200
keras.utils.set_random_seed(args.seed)
(x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=max_features)
x_train, y_train = x_train[: args.limit], y_train[: args.limit]
print(len(x_train), "train sequences,", len(x_test), "test sequences")
x_train = pad_sequences(x_train, maxlen=maxlen)  # pad short reviews with 0 in front, cut long ones
x_test = pad_sequences(x_test, maxlen=maxlen)
print("x_train shape:", x_train.shape)

model = Sequential()
model.add(Embedding(max_features, 32, mask_zero=True, input_shape=(maxlen,)))  # 0 is padding: masked
model.add(Bidirectional(LSTM(32)) if args.bidirectional else LSTM(32))
model.add(Dense(1, activation="sigmoid"))
model.summary()

model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
e_s = EarlyStopping(patience=2, restore_best_weights=True)
model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, validation_split=0.2, callbacks=[e_s])

loss, accuracy = model.evaluate(x_test, y_test)
print("The test loss is %.3f" % loss)
print("The test accuracy is %.2f%%" % (accuracy * 100))
