"""The training side of the rescue benchmark: data, networks and optimizers in numpy.

What a user's trainer owns and retune never sees: a synthetic classification task drawn
from a fixed-seed teacher network, a one-hidden-layer MLP (or, with no hidden layer, a
softmax classifier), inverted dropout, SGD with momentum and Adam written out by hand
(so that a learning rate, momentum, weight decay or batch change read from the config
between epochs reaches the live optimizer exactly as it would in Keras or PyTorch), and
checkpoints that hold weights and optimizer state together.

Arithmetic is float32, as in the frameworks: a run whose learning rate is far too high
overflows here the way it would there, and the log shows `nan`/`inf` for retune to read.
"""

import copy
import math

import numpy as np

DTYPE = np.float32
# Keras's Adam epsilon (PyTorch uses 1e-8; the difference is invisible at these scales).
ADAM_EPSILON = 1e-7
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999


class Data:
    """Inputs and integer labels for a training and a validation split."""

    def __init__(self, x_train, y_train, x_val, y_val, classes):
        self.x_train, self.y_train = x_train, y_train
        self.x_val, self.y_val = x_val, y_val
        self.classes = classes


def make_data(seed, n_train, n_val, features=20, classes=10, label_noise=0.05, blobs=3, spread=1.2):
    """A task a small MLP learns well and a linear model only partly: each class is a
    mixture of `blobs` Gaussian clusters whose centres are drawn at random (so classes
    interleave and no single hyperplane separates them). A share `label_noise` of the
    *training* labels is replaced by a uniformly drawn class; validation labels stay clean,
    so the score measures what the run learned, not the noise. `spread` is the centres'
    standard deviation against unit-variance clusters: it sets how much the classes
    overlap."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, (classes * blobs, features))

    def draw(n):
        which = rng.integers(0, classes * blobs, n)
        x = centres[which] + rng.normal(0.0, 1.0, (n, features))
        return x.astype(DTYPE), (which % classes).astype(np.int64)

    x_train, y_train = draw(n_train)
    x_val, y_val = draw(n_val)
    flip = rng.random(n_train) < label_noise
    y_train = np.where(flip, rng.integers(0, classes, n_train), y_train)
    return Data(x_train, y_train, x_val, y_val, classes)


class Net:
    """Dense ReLU layers with inverted dropout on the hidden activations, softmax output,
    as a Keras `Sequential` of `Dense` and `Dropout` layers would be. `hidden=()` is a
    softmax (multinomial logistic regression) classifier."""

    def __init__(self, features, hidden, classes, rng):
        sizes = [features, *hidden, classes]
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            # Keras Dense's defaults: Glorot uniform kernel, zero bias. (He-normal, 2.4×
            # larger, starts a 10-class net at a loss near 3.9 instead of ln 10 ≈ 2.3.)
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w = rng.uniform(-limit, limit, (fan_in, fan_out)).astype(DTYPE)
            self.params.append(w)
            self.params.append(np.zeros(fan_out, dtype=DTYPE))

    def forward(self, x, dropout=0.0, rng=None):
        """Logits, and per layer its input, pre-activation and dropout mask for the
        backward pass."""
        inputs, pre, masks = [x], [], []
        h = x
        layers = len(self.params) // 2
        for i in range(layers):
            z = h @ self.params[2 * i] + self.params[2 * i + 1]
            if i == layers - 1:
                return z, (inputs, pre, masks)
            a = np.maximum(z, 0)
            mask = None
            if dropout > 0.0 and rng is not None:
                keep = 1.0 - dropout
                mask = (rng.random(a.shape, dtype=DTYPE) < keep).astype(DTYPE) / DTYPE(keep)
                a = a * mask
            pre.append(z)
            masks.append(mask)
            inputs.append(a)
            h = a
        raise AssertionError("a net has at least one layer")

    def loss_and_grads(self, x, y, dropout, rng):
        """Mean cross-entropy, accuracy and the gradients of the mean loss for one batch."""
        n = x.shape[0]
        rows = np.arange(n)
        # A run whose learning rate is far too high overflows: that is the data, not an error.
        with np.errstate(all="ignore"):
            logits, (inputs, pre, masks) = self.forward(x, dropout, rng)
            logp = log_softmax(logits)
            loss = float(-logp[rows, y].mean())
            acc = float((np.argmax(logits, axis=1) == y).mean())
            d = np.exp(logp)
            d[rows, y] -= 1.0
            d /= DTYPE(n)
            grads = [None] * len(self.params)
            for i in reversed(range(len(self.params) // 2)):
                grads[2 * i] = inputs[i].T @ d
                grads[2 * i + 1] = d.sum(axis=0)
                if i > 0:
                    d = d @ self.params[2 * i].T
                    if masks[i - 1] is not None:
                        d = d * masks[i - 1]
                    d = d * (pre[i - 1] > 0)
        return loss, acc, grads

    def evaluate(self, x, y, chunk=4096):
        """Mean cross-entropy and accuracy without dropout."""
        losses, hits = 0.0, 0
        with np.errstate(all="ignore"):
            for s in range(0, x.shape[0], chunk):
                logits, _ = self.forward(x[s : s + chunk])
                logp = log_softmax(logits)
                idx = np.arange(logits.shape[0])
                losses += float(-logp[idx, y[s : s + chunk]].sum())
                hits += int((np.argmax(logits, axis=1) == y[s : s + chunk]).sum())
        return losses / x.shape[0], hits / x.shape[0]


def log_softmax(z):
    with np.errstate(all="ignore"):
        m = z.max(axis=1, keepdims=True)
        s = z - m
        return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


class Optimizer:
    """SGD with momentum (PyTorch's form: v ← μv + g, w ← w − lr·v, so a new learning
    rate acts on the next step at once) or Adam (Kingma & Ba, bias-corrected). Weight decay
    is the L2 penalty added to the gradient, as `weight_decay` does in torch.optim.SGD and
    torch.optim.Adam."""

    def __init__(self, kind, params):
        if kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {kind!r}")
        self.kind = kind
        self.t = 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads, lr, momentum, weight_decay):
        self.t += 1
        with np.errstate(all="ignore"):
            for i, (p, g) in enumerate(zip(params, grads)):
                if weight_decay:
                    g = g + DTYPE(weight_decay) * p
                if self.kind == "sgd":
                    if momentum:
                        self.m[i] = DTYPE(momentum) * self.m[i] + g
                        g = self.m[i]
                    p -= DTYPE(lr) * g
                else:
                    self.m[i] = DTYPE(ADAM_BETA1) * self.m[i] + DTYPE(1 - ADAM_BETA1) * g
                    self.v[i] = DTYPE(ADAM_BETA2) * self.v[i] + DTYPE(1 - ADAM_BETA2) * g * g
                    mhat = self.m[i] / DTYPE(1 - ADAM_BETA1**self.t)
                    vhat = self.v[i] / DTYPE(1 - ADAM_BETA2**self.t)
                    p -= DTYPE(lr) * mhat / (np.sqrt(vhat) + DTYPE(ADAM_EPSILON))


def train_epoch(net, opt, data, hp, rng):
    """One pass over the training set with the hyperparameters in `hp`; returns the
    epoch's training loss and accuracy as Keras reports them (the mean over its batches,
    with dropout on). A non-finite batch makes the epoch's loss non-finite, as in Keras."""
    n = data.x_train.shape[0]
    order = rng.permutation(n)
    batch = max(1, int(hp["batch_size"]))
    accumulate = max(1, int(hp.get("gradient_accumulation_steps", 1)))
    losses, accs, weights = [], [], []
    acc_grads, acc_count = None, 0
    for s in range(0, n, batch):
        idx = order[s : s + batch]
        loss, acc, grads = net.loss_and_grads(data.x_train[idx], data.y_train[idx], hp["dropout"], rng)
        losses.append(loss)
        accs.append(acc)
        weights.append(len(idx))
        if acc_grads is None:
            acc_grads = grads
        else:
            with np.errstate(all="ignore"):
                acc_grads = [a + g for a, g in zip(acc_grads, grads)]
        acc_count += 1
        if acc_count == accumulate or s + batch >= n:
            mean = [g / DTYPE(acc_count) for g in acc_grads] if acc_count > 1 else acc_grads
            opt.step(net.params, mean, hp["learning_rate"], hp.get("momentum", 0.0), hp.get("weight_decay", 0.0))
            acc_grads, acc_count = None, 0
    w = np.asarray(weights, dtype=np.float64)
    with np.errstate(all="ignore"):
        return float(np.dot(losses, w) / w.sum()), float(np.dot(accs, w) / w.sum())


class Checkpoint:
    """Weights and optimizer state, copied, with the epoch and val_loss they scored."""

    def __init__(self, net, opt, epoch, val_loss):
        self.params = [p.copy() for p in net.params]
        self.opt = copy.deepcopy(opt)
        self.epoch = epoch
        self.val_loss = val_loss

    def restore(self, net):
        net.params = [p.copy() for p in self.params]
        return copy.deepcopy(self.opt)
