"""The runs the rescue benchmark starts from: one healthy, the rest broken by one setting.

Each scenario names its data (a fixed seed per benchmark seed), its network, the config a
user would have written (the keys the trainer reads, plus the frozen ones a real config
carries), and the grid the reference comes from: learning rates, and the values of the
knob the scenario broke, each trained with no intervention on the same epoch budget. The
best final validation accuracy of that grid is what a user who had picked the right
setting from the start would have got; a policy's score is its final validation
accuracy over that.
"""

ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
SGD_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)

FEATURES = 20
CLASSES = 10


def _config(optimizer, lr, batch, n_train, n_val, hidden, momentum=None, dropout=0.0, weight_decay=0.0, extra=None):
    """The config file a user's script would read. Keys in the order a person writes
    them; `momentum` only for SGD (an Adam config with a momentum key is a conflict retune
    reports, not a realistic start)."""
    c = {
        "model": "mlp" if hidden else "softmax_classifier",
        "hidden_units": hidden[0] if hidden else 0,
        "num_features": FEATURES,
        "num_classes": CLASSES,
        "optimizer": optimizer,
        "learning_rate": lr,
    }
    if momentum is not None:
        c["momentum"] = momentum
    c["batch_size"] = batch
    if extra:
        c.update(extra)
    c.update(
        {
            "epochs": None,  # the budget, filled in by the benchmark
            "dropout": dropout,
            "weight_decay": weight_decay,
            "num_train_samples": n_train,
            "num_val_samples": n_val,
            "label_noise": None,  # filled in from the data settings
            "seed": None,
        }
    )
    return c


class Scenario:
    def __init__(self, name, title, data, hidden, config, grid, broken):
        self.name = name
        self.title = title
        # make_data keyword arguments (n_train, n_val, label_noise …).
        self.data = data
        self.hidden = tuple(hidden)
        self.config = config
        self.config["label_noise"] = data.get("label_noise", 0.05)
        # {config key: values}: the reference grid (their product).
        self.grid = grid
        # What is wrong with the config, for the table (None for the healthy run).
        self.broken = broken


def all_scenarios():
    mlp = (64,)
    n, n_val = 2000, 1000
    return [
        Scenario(
            "lr_high_adam",
            "learning rate far too high (Adam 1.0)",
            {"n_train": n, "n_val": n_val},
            mlp,
            _config("adam", 1.0, 32, n, n_val, mlp),
            {"learning_rate": ADAM_GRID},
            "learning_rate 1.0 (Adam's default is 0.001)",
        ),
        Scenario(
            "lr_high_sgd",
            "learning rate far too high (SGD, momentum 0.9, lr 3)",
            {"n_train": n, "n_val": n_val},
            mlp,
            _config("sgd", 3.0, 32, n, n_val, mlp, momentum=0.9),
            {"learning_rate": SGD_GRID},
            "learning_rate 3 with momentum 0.9",
        ),
        Scenario(
            "lr_high_sgd_chance",
            "learning rate 12× above the range, at chance without NaNs (SGD, momentum 0.9, lr 1.5, two hidden layers)",
            # The first steps silence the ReLUs: the loss sits near ln 10 from epoch 1 with no
            # NaN, as the Keras digits MLP at SGD 3.0 did (#12).
            {"n_train": n, "n_val": n_val},
            (64, 64),
            _config("sgd", 1.5, 32, n, n_val, (64, 64), momentum=0.9),
            {"learning_rate": SGD_GRID},
            "learning_rate 1.5 with momentum 0.9 (the range's top at batch 32 is 0.125)",
        ),
        Scenario(
            "lr_high_adam_few",
            "learning rate a few times too high (Adam 0.03)",
            {"n_train": n, "n_val": n_val},
            mlp,
            _config("adam", 0.03, 32, n, n_val, mlp),
            {"learning_rate": ADAM_GRID},
            "learning_rate 0.03 (3× the top of Adam's usual range, 30× its default)",
        ),
        Scenario(
            "lr_low",
            "learning rate far too low (Adam 1e-6)",
            {"n_train": n, "n_val": n_val},
            mlp,
            _config("adam", 1e-6, 32, n, n_val, mlp),
            {"learning_rate": ADAM_GRID},
            "learning_rate 1e-6",
        ),
        Scenario(
            "plateau",
            "plateau: softmax classifier, SGD step too large to settle",
            {"n_train": n, "n_val": n_val},
            (),
            _config("sgd", 0.5, 32, n, n_val, (), momentum=0.9),
            {"learning_rate": SGD_GRID},
            "learning_rate 0.5 with momentum 0.9 on a convex problem",
        ),
        Scenario(
            "overfitting",
            "overfitting: 1000 examples with 30% wrong labels, 256 hidden units, no regularisation",
            # Overlapping classes (spread 1.0): memorising the wrong labels makes the
            # model confidently wrong on validation, so val_loss climbs.
            {"n_train": 1000, "n_val": n_val, "label_noise": 0.3, "spread": 1.0},
            (256,),
            _config("adam", 3e-3, 32, 1000, n_val, (256,)),
            {"learning_rate": (1e-3, 3e-3, 1e-2), "weight_decay": (0.0, 1e-3, 1e-2), "dropout": (0.0, 0.3, 0.5)},
            "no dropout, no weight decay, 1000 examples with 30% wrong labels",
        ),
        Scenario(
            "large_batch",
            "effective batch too large (256 × accumulation 8 on 4096 examples)",
            {"n_train": 4096, "n_val": n_val},
            mlp,
            _config("adam", 1e-3, 256, 4096, n_val, mlp, extra={"gradient_accumulation_steps": 8}),
            {"learning_rate": ADAM_GRID, "gradient_accumulation_steps": (1, 2, 8)},
            "2 optimizer steps per epoch",
        ),
        Scenario(
            "healthy",
            "healthy (Adam 1e-3, batch 32)",
            {"n_train": n, "n_val": n_val},
            mlp,
            _config("adam", 1e-3, 32, n, n_val, mlp),
            {"learning_rate": ADAM_GRID},
            None,
        ),
    ]
