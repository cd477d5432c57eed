import numpy as np
import pandas as pd
import pytest

from fieldvision.pipelines.biomass.meta import MetaEncoder, film_meta, month_angle


def _wide():
    return pd.DataFrame(
        {
            "month": [1, 4, 7, 12],
            "ndvi": [0.2, 0.4, 0.6, 0.8],
            "height": [2.0, 4.0, 6.0, 8.0],
            "species": ["b", "a", "b", "c"],
            "state": ["Vic", "Tas", "NSW", "Tas"],
        }
    )


def test_month_is_cyclic_on_the_unit_circle():
    sin, cos = month_angle(np.arange(1, 13))
    np.testing.assert_allclose(sin**2 + cos**2, 1.0, rtol=1e-6)
    # December is as close to January as February is.
    d_dec = np.hypot(sin[11] - sin[0], cos[11] - cos[0])
    d_feb = np.hypot(sin[1] - sin[0], cos[1] - cos[0])
    assert d_dec == pytest.approx(d_feb, rel=1e-5)


def test_encode_standardises_and_indexes_classes():
    enc = MetaEncoder.fit(_wide())
    out = enc.encode(_wide())
    assert out["ndvi_z"].mean() == pytest.approx(0.0, abs=1e-6)
    assert out["height_z"].std() == pytest.approx(1.0, rel=1e-5)
    assert enc.species == ("a", "b", "c") and list(out["species"]) == [1, 0, 1, 2]
    assert list(out["state"]) == [2, 1, 0, 1]
    assert out["species"].dtype == np.int64 and out["month_sin"].dtype == np.float32


def test_decode_month_inverts_the_angle_and_roundtrip_dict():
    enc = MetaEncoder.fit(_wide())
    sin, cos = month_angle(np.arange(1, 13))
    assert list(enc.decode_month(sin, cos)) == list(range(1, 13))
    assert MetaEncoder.from_dict(enc.to_dict()) == enc


def test_film_meta_stacks_the_phase1_outputs_in_film_key_order():
    outputs = {
        "month": np.array([[0.1, 0.9], [0.2, 0.8]]),
        "ndvi": np.array([1.0, 2.0]),
        "height": np.array([-1.0, 3.0]),
        "species": np.zeros((2, 4)),  # classification logits are not FiLM inputs
    }
    meta = film_meta(outputs)
    assert meta.dtype == np.float32
    np.testing.assert_allclose(meta, [[0.1, 0.9, 1.0, -1.0], [0.2, 0.8, 2.0, 3.0]])
