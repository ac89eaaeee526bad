"""mindspore_hub_conf.create_network builds the named networks."""
import pytest

from mindspore_hub_conf import create_network
from src.models.edsr import EDSR
from src.models.msrresnet import MSRResNet
from src.quant.convert import quant_convs


def test_names_build_the_right_networks():
    edsr = create_network('EDSR', scale=2)
    assert isinstance(edsr, EDSR) and sum(p.size for p in edsr.get_parameters()) == 1369859
    assert isinstance(create_network('MSRResNet', scale=4), MSRResNet)
    qnet = create_network('QuantEDSR', scale=4, w_bit=4, a_bit=4)
    bits = {name: (conv.w_bit, conv.a_bit) for name, conv in quant_convs(qnet)}
    assert bits['conv_first'] == bits['conv_last'] == (8, 8) and bits['body.0.conv1'] == (4, 4)
    assert not quant_convs(edsr)


def test_unknown_name():
    with pytest.raises(ValueError, match='unknown network'):
        create_network('VDSR')
