"""scikit-learn's own estimator checks on a fast CNNClassifier and on every transformer."""

import inspect

from sklearn.utils.estimator_checks import parametrize_with_checks

from fer_sklearn import CNNClassifier
from fer_sklearn.preprocessing import (
    Flatten,
    PixelScaler,
    PixelStandardizer,
    Resize,
    ToChannels,
    Unflatten,
)

# Each check that cannot pass, with the reason. Everything else must pass.
EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_, virtual_params_ "
        "and _params_to_validate itself"
    ),
    "check_set_params": (
        "skorch lists its internal _params_to_validate set among get_params() "
        "(its _get_param_names returns every attribute not ending in '_'), and "
        "the check overwrites it with a float"
    ),
}


def _fast_cnn():
    return CNNClassifier(module__width=8, module__depth=2, max_epochs=15, lr=0.01,
                         batch_size=32, augment=False, random_state=0)


# Strict: a listed check that starts to pass fails the suite, so the list stays true.
_STRICT = ({"xfail_strict": True}
           if "xfail_strict" in inspect.signature(parametrize_with_checks).parameters else {})


@parametrize_with_checks([_fast_cnn()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
                         **_STRICT)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@parametrize_with_checks([PixelScaler(), PixelStandardizer(), Resize(8), ToChannels(), Flatten(),
                          Unflatten()])
def test_transformers_are_sklearn_compatible(estimator, check):
    check(estimator)
